"""Live dashboards, server side: what titan-dashboard lets through, and the app it starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "datascience" / "titan_dashboard"))

from titan_dashboard.app import app_command  # noqa: E402
from titan_dashboard.rules import (  # noqa: E402
    READINESS,
    V1_PROTOCOL,
    client_message_type,
    decide,
    kernel_message_allowed,
    normalise,
)

KERNEL = "0b4c7d5e-1f2a-4b3c-8d9e-0f1a2b3c4d5e"

DENIED = [
    "api/contents", "api/contents/", "api/contents/dash.ipynb", "api/kernels", "api/kernels/",
    f"api/kernels/{KERNEL}/restart", f"api/kernels/{KERNEL}/interrupt", "api/kernels/not-a-kernel-id",
    "api/sessions", "api/terminals", "api/kernelspecs", "api/config/notebook",
    "api/nbconvert", "api/status", "api/me", "api/shutdown", "api/events/subscribe", "terminals/1",
    "terminals/websocket/1", "lab", "lab/tree/dash.ipynb", "tree", "tree/", "files/secret.csv", "edit/a.py",
    "view/a.html", "notebooks/a.ipynb", "nbconvert/html/a.ipynb", "kernelspecs/python3/logo-64x64.png", "doc",
    "voila/files/secret.png", "voila/tree", "voila/render/other.ipynb", "voila/api/contents/", "login", "logout",
    # the same, disguised
    "API/contents", "Lab", "//api/contents", "api//contents", "%61pi/contents", "api%2Fcontents", "lab/",
]


@pytest.mark.parametrize("app", ["voila", "panel"])
@pytest.mark.parametrize("path", DENIED)
def test_jupyter_paths_are_refused_for_everyone(app: str, path: str) -> None:
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        verdict = decide(app, method, path, websocket=False)
        assert verdict.status == 403, (method, path, verdict)


@pytest.mark.parametrize("path", ["api/kernels", f"api/kernels/{KERNEL}/channels", "terminals/websocket/1",
                                  "api/events/subscribe", "lab", "", "app/ws"])
def test_voila_opens_no_websocket_but_its_kernel_channels(path: str) -> None:
    expected = 200 if path.endswith("/channels") else 403
    assert decide("voila", "GET", path, websocket=True).status == expected


@pytest.mark.parametrize(("path", "expected"), [("app/ws", 200), ("ws", 200), ("apps/sub/ws", 200),
                                                (f"api/kernels/{KERNEL}/channels", 403), ("app", 403),
                                                ("terminals/websocket/1", 403)])
def test_panel_opens_only_bokeh_websockets(path: str, expected: int) -> None:
    assert decide("panel", "GET", path, websocket=True).status == expected


@pytest.mark.parametrize(("app", "path"), [
    ("voila", ""), ("voila", "voila/static/voila.js"), ("voila", "voila/templates/lab/static/index.css"),
    ("voila", "voila/api/themes/@jupyterlab/theme-light-extension/index.css"), ("voila", "?x=1"),
    ("panel", ""), ("panel", "dash"), ("panel", "dash/"), ("panel", "static/js/bokeh.min.js"),
    ("panel", "dash/autoload.js"),
])
def test_the_app_itself_is_forwarded(app: str, path: str) -> None:
    verdict = decide(app, "GET", path, websocket=False)
    assert verdict.allowed and verdict.action != READINESS


def test_voila_pages_may_read_their_kernels_model_and_nothing_more() -> None:
    assert decide("voila", "GET", f"api/kernels/{KERNEL}", websocket=False).allowed
    assert decide("voila", "GET", f"api/kernels/{KERNEL}/", websocket=False).path == f"api/kernels/{KERNEL}"
    for method in ("DELETE", "POST", "PATCH", "PUT"):
        assert decide("voila", method, f"api/kernels/{KERNEL}", websocket=False).status == 403, method
    assert decide("panel", "GET", f"api/kernels/{KERNEL}", websocket=False).status == 403


def test_readiness_is_get_api_only() -> None:
    assert decide("voila", "GET", "api", websocket=False).action == READINESS
    assert decide("panel", "GET", "api/", websocket=False).action == READINESS
    assert decide("voila", "POST", "api", websocket=False).status == 405
    assert decide("voila", "GET", "api/status", websocket=False).status == 403


def test_unsafe_methods_pass_only_where_voila_needs_them() -> None:
    assert decide("voila", "POST", f"voila/api/shutdown/{KERNEL}", websocket=False).allowed
    assert decide("voila", "POST", "voila/api/shutdown/not-a-kernel", websocket=False).status == 405
    assert decide("voila", "DELETE", f"voila/api/shutdown/{KERNEL}", websocket=False).status == 405
    assert decide("voila", "POST", "", websocket=False).status == 405
    assert decide("panel", "POST", "dash", websocket=False).status == 405


@pytest.mark.parametrize("path", ["../api/contents", "a/../../x", "%2e%2e/x", "./lab", "a\\b", "a%00b", "a%0Ab"])
def test_tricky_paths_are_bad_requests(path: str) -> None:
    assert normalise(path) is None
    assert decide("voila", "GET", path, websocket=False).status == 400


def test_forwarded_paths_are_the_normalised_ones() -> None:
    assert normalise("voila//static/%76oila.js") == "voila/static/voila.js"
    assert normalise("dash/") == "dash/"
    assert decide("panel", "GET", "dash//", websocket=False).path == "dash/"


def kernel_message(msg_type: str) -> dict[str, object]:
    return {"header": {"msg_type": msg_type, "msg_id": "1"}, "parent_header": {}, "metadata": {},
            "content": {"code": "print(open('/home/jovyan/secret').read())"}, "channel": "shell"}


def binary_message(msg_type: str) -> bytes:
    body = json.dumps(kernel_message(msg_type)).encode()
    buffer = b"\x00\x01\x02"
    offsets = [4 + 4 * 2, 4 + 4 * 2 + len(body)]
    return (2).to_bytes(4, "big") + b"".join(o.to_bytes(4, "big") for o in offsets) + body + buffer


def v1_message(msg_type: str) -> bytes:
    """As jupyter_server's serialize_msg_to_ws_v1 writes it."""
    message = kernel_message(msg_type)
    parts = [json.dumps(message[key]).encode() for key in ("header", "parent_header", "metadata", "content")]
    parts.append(b"\x00buffer")
    channel = b"shell"
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(len(channel) + offsets[-1])
    for part in parts:
        offsets.append(len(part) + offsets[-1])
    return (len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets) + channel
            + b"".join(parts))


@pytest.mark.parametrize("msg_type", ["comm_msg", "comm_open", "comm_close", "comm_info_request",
                                      "kernel_info_request"])
def test_widget_messages_reach_the_kernel(msg_type: str) -> None:
    assert kernel_message_allowed(json.dumps(kernel_message(msg_type)))
    assert kernel_message_allowed(binary_message(msg_type))
    assert client_message_type(binary_message(msg_type)) == msg_type
    assert kernel_message_allowed(v1_message(msg_type), V1_PROTOCOL)
    assert client_message_type(v1_message(msg_type), V1_PROTOCOL) == msg_type


@pytest.mark.parametrize("msg_type", ["execute_request", "inspect_request", "complete_request", "history_request",
                                      "shutdown_request", "interrupt_request", "debug_request", "input_reply"])
def test_code_never_reaches_the_kernel(msg_type: str) -> None:
    assert not kernel_message_allowed(json.dumps(kernel_message(msg_type)))
    assert not kernel_message_allowed(binary_message(msg_type))
    assert not kernel_message_allowed(v1_message(msg_type), V1_PROTOCOL)
    # a frame of one protocol sent on a socket of the other is unreadable, so dropped
    assert not kernel_message_allowed(json.dumps(kernel_message(msg_type)), V1_PROTOCOL)
    assert not kernel_message_allowed(v1_message(msg_type))


@pytest.mark.parametrize("message", ["", "not json", "[]", '{"header": []}', b"", b"\x00\x00\x00\x05",
                                     b"\xff\xff\xff\xff" + b"x" * 10])
def test_unreadable_kernel_messages_are_dropped(message: str | bytes) -> None:
    assert not kernel_message_allowed(message)
    assert not kernel_message_allowed(message, V1_PROTOCOL)


def test_app_commands() -> None:
    voila = app_command("voila", Path("/home/jovyan/dash.ipynb"), 41234, "/user/alice/dash1/")
    assert voila[1:] == ["-m", "voila", "--no-browser", "--port=41234", "--Voila.ip=127.0.0.1",
                         "--Voila.port_retries=0", "--Voila.base_url=/user/alice/dash1/", "/home/jovyan/dash.ipynb"]
    panel = app_command("panel", Path("/home/jovyan/apps/app.py"), 41235, "/user/alice/dash1/")
    assert panel[1:] == ["-m", "panel", "serve", "/home/jovyan/apps/app.py", "--port", "41235", "--address",
                         "127.0.0.1", "--prefix", "/user/alice/dash1/", "--allow-websocket-origin=127.0.0.1:41235",
                         "--num-procs", "1"]
    with pytest.raises(ValueError, match="unknown dashboard app"):
        app_command("jupyterlab", Path("/home/jovyan/a.ipynb"), 1, "/")
