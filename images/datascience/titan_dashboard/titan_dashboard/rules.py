"""What a dashboard server lets through: pure functions on paths and kernel messages.

A dashboard server serves one app (Voila or Panel) and nothing of Jupyter: every Jupyter API
path is refused with 403, for the owner and viewers alike. The only Jupyter-looking routes that
pass are the two Voila's page uses for the kernel it started for that page: ``GET
api/kernels/<id>`` (the kernel's model: id, name, state) and the websocket
``api/kernels/<id>/channels``, on which only the messages widgets need pass (comms and kernel
info): a viewer cannot execute code in the kernel. The kernel list, starting, stopping,
restarting or interrupting kernels are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

FORWARD = 0  # the request goes to the app
READINESS = 1  # GET <prefix>api: JupyterHub's readiness check, answered without auth

KERNEL_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
VOILA_CHANNELS = re.compile(rf"api/kernels/{KERNEL_ID}/channels")
VOILA_KERNEL = re.compile(rf"api/kernels/{KERNEL_ID}")
VOILA_SHUTDOWN = re.compile(rf"voila/api/shutdown/{KERNEL_ID}")
PANEL_WEBSOCKET = re.compile(r"(?:[^/]+/)*ws")

# First path segments (lower case) that belong to Jupyter, never to a dashboard.
DENIED_ROOTS = frozenset({
    "api", "lab", "tree", "notebooks", "edit", "files", "view", "terminals", "nbconvert", "kernelspecs",
    "doc", "lsp", "nbextensions", "custom", "login", "logout", "jupyterlab", "retro", "voila_api",
})
# Longer prefixes (lower case) that Voila serves but a dashboard does not need.
DENIED_PREFIXES = ("voila/files", "voila/tree", "voila/render", "voila/api/contents")
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Messages a viewer's browser may send to a Voila kernel: widgets talk through comms.
V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"  # jupyter_server's binary kernel websocket protocol
ALLOWED_KERNEL_MESSAGES = frozenset({"kernel_info_request", "comm_info_request", "comm_open", "comm_msg",
                                     "comm_close"})


@dataclass(frozen=True)
class Verdict:
    """``action`` FORWARD or READINESS with ``status`` 200, or an error ``status`` and its ``reason``."""

    status: int
    reason: str = ""
    action: int = FORWARD
    path: str = ""  # the normalised path to forward (relative to the prefix)

    @property
    def allowed(self) -> bool:
        return self.status == 200


def normalise(raw: str) -> str | None:
    """A request path relative to the prefix, percent-decoded, with empty segments dropped and a
    trailing slash kept; None when it has '.', '..', a backslash or a control character."""
    decoded = unquote(raw)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded) or "\\" in decoded:
        return None
    segments = decoded.split("/")
    if any(segment in (".", "..") for segment in segments):
        return None
    path = "/".join(segment for segment in segments if segment)
    if path and decoded.endswith("/"):
        path += "/"
    return path


def _denied(path: str) -> bool:
    lower = path.lower()
    root = lower.split("/", 1)[0]
    return root in DENIED_ROOTS or any(lower == p or lower.startswith(p + "/") for p in DENIED_PREFIXES)


def decide(app: str, method: str, raw_path: str, websocket: bool) -> Verdict:
    """What to do with ``method raw_path`` (relative to the server's prefix) on an ``app`` server."""
    path = normalise(raw_path)
    if path is None:
        return Verdict(400, "bad path")
    bare = path.rstrip("/")
    if bare.lower() == "api" and not websocket:
        if method in SAFE_METHODS:
            return Verdict(200, action=READINESS, path=path)
        return Verdict(405, "only GET")
    if websocket:
        if app == "voila" and VOILA_CHANNELS.fullmatch(bare):
            return Verdict(200, path=bare)
        if app == "panel" and PANEL_WEBSOCKET.fullmatch(bare) and not _denied(bare):
            return Verdict(200, path=bare)
        return Verdict(403, "this dashboard server opens no such websocket")
    if app == "voila" and method in SAFE_METHODS and VOILA_KERNEL.fullmatch(bare):
        return Verdict(200, path=bare)
    if _denied(path):
        return Verdict(403, "a dashboard server serves only its dashboard: no Jupyter API, files, kernels or "
                            "terminals")
    if method in SAFE_METHODS:
        return Verdict(200, path=path)
    if app == "voila" and method == "POST" and VOILA_SHUTDOWN.fullmatch(bare):
        return Verdict(200, path=bare)
    return Verdict(405, f"{method} is not allowed on a dashboard")


def _v1_header(message: bytes) -> Any:
    """The header of a ``v1.kernel.websocket.jupyter.org`` frame: a count and that many
    little-endian 8-byte offsets, then channel, header, parent header, metadata, content, buffers."""
    count = int.from_bytes(message[:8], "little")
    if count < 3 or len(message) < 8 * (count + 1):
        raise ValueError("short frame")
    offsets = [int.from_bytes(message[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
    return json.loads(message[offsets[1]:offsets[2]].decode("utf-8"))


def _legacy_message(message: str | bytes) -> Any:
    """A message of Jupyter's default protocol: JSON text, or a binary frame (a big-endian 4-byte
    count and offsets, the JSON message, then its buffers)."""
    if isinstance(message, str):
        return json.loads(message)
    count = int.from_bytes(message[:4], "big")
    if count < 1 or len(message) < 4 + 4 * count:
        raise ValueError("short frame")
    offsets = [int.from_bytes(message[4 + 4 * i: 8 + 4 * i], "big") for i in range(count)]
    end = offsets[1] if count > 1 else len(message)
    return json.loads(message[offsets[0]:end].decode("utf-8"))


def client_message_type(message: str | bytes, subprotocol: str | None = None) -> str:
    """The ``msg_type`` of a message a browser sends on a kernel websocket that speaks
    ``subprotocol`` (``v1.kernel.websocket.jupyter.org``, else Jupyter's default protocol);
    '' when it cannot be read."""
    try:
        if subprotocol == V1_PROTOCOL:
            if not isinstance(message, bytes):
                return ""
            msg_type = _v1_header(message)["msg_type"]
        else:
            msg_type = _legacy_message(message)["header"]["msg_type"]
    except (ValueError, KeyError, TypeError, IndexError):
        return ""
    return msg_type if isinstance(msg_type, str) else ""


def kernel_message_allowed(message: str | bytes, subprotocol: str | None = None) -> bool:
    return client_message_type(message, subprotocol) in ALLOWED_KERNEL_MESSAGES
