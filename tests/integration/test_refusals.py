"""Bad input costs the hub little and leaves nothing behind: refused spawns store nothing and take no
named-server slot; a refused body is answered and logged bounded and escaped, without a traceback;
over-large bodies to the Titan service and the gateway get 413 with a JSON message through the proxy."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.hub import Hub

pytestmark = [pytest.mark.docker]
MB = 1024 * 1024


# ``hub``: the session's hub (tests/integration/conftest.py).


def stored_servers(hub: Hub, user: str) -> dict[str, object]:
    found: dict[str, object] = hub.admin.api("GET", f"/users/{user}?include_stopped_servers=1").json()["servers"]
    return found


def test_refused_named_spawns_store_nothing_and_take_no_slot(hub: Hub) -> None:
    hub.admin.create_user("rita")
    for name in ("a1", "a2", "a3"):
        response = hub.admin.api("POST", f"/users/rita/servers/{name}", json={"profile": "nope", "pad": "x" * MB})
        assert response.status_code == 400
    wait_for(lambda: not set(stored_servers(hub, "rita")) & {"a1", "a2", "a3"}, 20, "refused servers to be forgotten")
    assert all(not s.get("user_options") for s in stored_servers(hub, "rita").values())  # type: ignore[attr-defined]
    response = hub.admin.api("POST", "/users/rita/servers/work", json={"profile": "small"})
    assert response.status_code in (201, 202), response.text
    hub.admin.stop("rita", "work")


def test_a_refused_body_is_answered_and_logged_bounded_escaped_and_without_traceback(hub: Hub) -> None:
    hub.admin.create_user("otto")
    before = hub.log_path.stat().st_size
    body = {"profile": "small", "evil\u202e\x00\nINJECTED LOG LINE": "v", "k" * (MB - 100): "v"}
    response = hub.admin.api("POST", "/users/otto/servers/x1", json=body)
    assert response.status_code == 400
    message = response.json()["message"]
    assert len(response.content) < 2048 and "Unknown option(s)" in message
    assert "\u202e" not in message and "\x00" not in message and "\n" not in message
    assert "\\u202e" in message  # escaped, so the user still sees what was sent
    wait_for(lambda: "otto" in hub.log_path.read_text(errors="replace")[before:], 10, "the refusal in the log")
    logged = hub.log_path.read_bytes()[before:]
    print(f"\n[refusals] a 1 MiB refused body: {len(response.content)} bytes answered, {len(logged)} bytes logged")
    assert len(logged) < 16 * 1024
    text = logged.decode(errors="replace")
    assert "Traceback" not in text and "INJECTED" not in text.replace("\\nINJECTED", "")
    assert "\u202e".encode() not in logged and b"\x00" not in logged
    assert not [line for line in text.splitlines() if line.startswith("[E ") and "otto" in line]


def post_raw(url: str, path: str, token: str, length: int, sent: int, scheme: str = "token") -> tuple[int, bytes]:
    """POST a body announced as ``length`` bytes, sending only ``sent`` of them, and read the answer
    (as curl does: an early answer is read while the body is still going)."""
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nAuthorization: {scheme} {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
        sock.sendall(head.encode())
        try:
            sock.sendall(b"{" + b" " * (sent - 1))
        except OSError:
            pass  # the server answered and closed first
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def test_over_large_bodies_get_413_with_a_json_message_through_the_proxy(hub: Hub) -> None:
    hub.admin.create_user("lena")
    token = hub.admin.user_token("lena")
    status, body = post_raw(hub.url, "/services/titan/api/links", token, 200 * MB, 2 * MB)
    assert status == 413, body[:300]
    assert "at most 10 MB" in json.loads(body)["message"]
    status, body = post_raw(hub.url, "/services/dask-gateway/api/v1/clusters/", token, 3 * MB, 3 * MB,
                            scheme="jupyterhub")  # the dask-gateway client's scheme
    assert status == 413, body[:300]
    assert "too large" in json.loads(body)["message"]
    # The service is fine afterwards.
    assert hub.admin.api("GET", "/users/lena").status_code == 200


def test_the_automation_token_creates_users_but_never_reads_auth_state(hub: Hub) -> None:
    created = hub.admin.api("POST", "/titan/users/ulla")
    assert created.status_code == 201 and created.json()["name"] == "ulla"
    assert "auth_state" not in created.json()
    assert hub.admin.api("POST", "/titan/users/ulla").status_code == 409
    model = hub.admin.api("GET", "/users/ulla").json()
    assert "auth_state" not in model  # the key is there (null) only for a holder of admin:auth_state
    assert hub.admin.api("GET", "/users").status_code == 200
    # JupyterHub's own route needs admin:users, which the token does not hold; nor can it make admins.
    assert hub.admin.api("POST", "/users/vera").status_code == 403
    assert hub.admin.api("POST", "/titan/users/vera", json={"admin": True}).status_code == 400
    assert hub.admin.api("PATCH", "/users/ulla", json={"admin": True}).status_code == 403
    # A token it issues for a user reads no auth state either.
    token = hub.admin.user_token("ulla")
    as_user = requests.get(f"{hub.url}/hub/api/users/ulla", headers={"Authorization": f"token {token}"}, timeout=30)
    assert as_user.status_code == 200 and "auth_state" not in as_user.json()
    # A user's own token cannot use the route.
    refused = requests.post(f"{hub.url}/hub/api/titan/users/wanda", headers={"Authorization": f"token {token}"},
                            timeout=30)
    assert refused.status_code == 403 and "custom:titan:create-users" in refused.json()["message"]
