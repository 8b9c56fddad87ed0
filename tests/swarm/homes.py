"""Shared homes for the swarm test bed (``Testbed(homes=True)``): one directory of the hub host
that every node mounts at the same path over the network, as production mounts NFS
(docs/swarm-homes.md). This kernel has no NFS client, but it has FUSE: the hub host serves the
directory over SFTP and each node mounts it with sshfs.

- The server: ``sshd`` on the hub host's test bed address (a free port), started by the test bed as a
  foreground process, with its own host key and an authorized key for each node, all under the bed's
  directory. It runs in its own mount namespace (a tmpfs on /run gives it the /run/sshd it needs, so
  nothing is made on the host) and its own pid namespace (when it ends, every session ends with it).
  A node logs in as root, but the only thing it can run is the SFTP server as uid 1000
  (``ForceCommand setpriv --reuid=1000 ...``): every file a node writes belongs to 1000:1000, as on
  NFS with ``all_squash,anonuid=1000``. (The host's uid-1000 account is locked, which sshd refuses
  without PAM; PAM's session modules do not belong in a test.)
- Each node: in the engine's own mount namespace, before dockerd starts, the node's own empty
  directory ``nI/local-homes`` is bound over the homes path (the node's local disk at that path),
  and sshfs (``allow_other``: the containers' uid 1000 reaches it) is mounted over that. A node
  whose sshfs is gone sees its empty local directory, exactly as a real node whose NFS mount is
  missing sees its bare mount point.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from core.homes import HOMES_MARKER
from tests.swarm.host import TestbedError, pids_mentioning, send, sh

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
HOME_UID = 1000


def homes_missing() -> str:
    """"" when shared homes can be served and mounted here, else why not."""
    for tool in ("sshfs", "fusermount", "ssh-keygen", "setpriv"):
        if shutil.which(tool) is None:
            return f"shared homes in the test bed need {tool}, which is not installed"
    for path in (SSHD, SFTP_SERVER, "/dev/fuse"):
        if not os.path.exists(path):
            return f"shared homes in the test bed need {path}"
    return ""


class SharedHomes:
    """The homes root of one test bed: served from ``root`` on the hub host, mounted at ``root`` on nodes."""

    def __init__(self, root: Path, keys: Path, address: str) -> None:
        self.root, self.keys, self.address = root, keys, address
        self.port = 0
        self._server: subprocess.Popen[bytes] | None = None

    def node_key(self, i: int) -> Path:
        return self.keys / f"n{i}.key"

    def serve(self, nodes: int) -> None:
        """Keys, the homes root (root-owned, as an export's top: nodes make nothing there) with its
        marker, sshd."""
        why = homes_missing()
        if why:
            raise TestbedError(why)
        self.keys.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        (self.root / HOMES_MARKER).touch()  # what the admin makes once on the storage (core.homes)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "titan-testbed-host", "-f", str(self.keys / "host"))
        for i in range(1, nodes + 1):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"titan-testbed-n{i}", "-f", str(self.node_key(i)))
        authorized = self.keys / "authorized_keys"
        authorized.write_text("".join(Path(f"{self.node_key(i)}.pub").read_text() for i in range(1, nodes + 1)))
        authorized.chmod(0o644)
        with socket.socket() as probe:  # a free port on the bed's address (taken again at once by sshd)
            probe.bind((self.address, 0))
            self.port = probe.getsockname()[1]
        (self.keys / "known_hosts").write_text(f"[{self.address}]:{self.port} "
                                               f"{(self.keys / 'host.pub').read_text()}")
        ids = f"--reuid={HOME_UID} --regid={HOME_UID} --clear-groups"
        sftp = f"exec /usr/bin/setpriv {ids} {SFTP_SERVER} -d {self.root}"  # -d: its command line names the bed
        config = self.keys / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {self.address}:{self.port}", f"HostKey {self.keys / 'host'}",
            f"AuthorizedKeysFile {authorized}", "PidFile none", "StrictModes no", "UsePAM no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "AllowUsers root", "PermitRootLogin prohibit-password", f"Subsystem sftp {SFTP_SERVER}",
            f"ForceCommand {sftp}",
            "AllowTcpForwarding no", "AllowAgentForwarding no", "X11Forwarding no", "PermitTTY no", "",
        ]))
        script = f"mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 /run/sshd && exec {SSHD} -D -e -f \"$0\""
        with open(self.keys / "sshd.log", "wb") as log:
            self._server = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
                 "--", "sh", "-c", script, str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise TestbedError(f"sshd for the homes exited: {(self.keys / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TestbedError("sshd for the homes did not listen within 15 s")

    def mount_script(self, i: int, local: Path) -> str:
        """Shell commands, run in node I's own mount namespace before its dockerd: the node's local
        directory over the homes path, then the shared homes over that."""
        local.mkdir(parents=True, exist_ok=True)
        options = ",".join([
            "allow_other", f"port={self.port}", f"IdentityFile={self.node_key(i)}",
            f"UserKnownHostsFile={self.keys / 'known_hosts'}", "StrictHostKeyChecking=yes", "BatchMode=yes",
            "ServerAliveInterval=5", "ServerAliveCountMax=3",
            "reconnect",  # after a cut link, as an NFS hard mount: the home is back with the link
        ])
        root = shlex.quote(str(self.root))
        return (f"mount --bind {shlex.quote(str(local))} {root} && "
                f"sshfs -F /dev/null -o {shlex.quote(options)} root@{self.address}:{root} {root}")

    def client_pids(self, i: int) -> list[int]:
        """Node I's sshfs and its ssh (their command lines name the node's key)."""
        return pids_mentioning(str(self.node_key(i)))

    def stop(self) -> None:
        """End sshd (its pid namespace ends every session with it). unshare, waiting for it, lets a
        SIGTERM pass: the signal goes to both, as a process group (their own session's)."""
        if self._server is not None and self._server.poll() is None:
            try:
                os.killpg(self._server.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self._server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                send(self._server.pid, signal.SIGKILL)
                self._server.wait(timeout=5)
