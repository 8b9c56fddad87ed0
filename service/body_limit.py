"""A documented limit on request bodies, answered with 413 and a JSON message.

Tornado's own limit (``max_body_size``) closes the connection without an answer, which the hub's
proxy shows as its 503 page ("Your server appears to be down"). This wraps the application's
connection delegate: a request whose ``Content-Length`` is over the limit gets a 413 JSON answer as
soon as its headers arrive; its body is then read and thrown away, never stored (closing at once
would reset the connection under the proxy, which then shows its 503 page again), and the connection
closes. A chunked body (no length) that grows past the limit closes the connection.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer

MB = 1024 * 1024


def too_large_answer(length: int, limit: int) -> bytes:
    message = (f"The request body is {length / MB:.1f} MB; this service takes at most {limit / MB:g} MB "
               "(service.max_body_mb in titan.yaml).")
    return json.dumps({"status": 413, "message": message}).encode()


class _Limited(httputil.HTTPMessageDelegate):
    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection, limit: int) -> None:
        self.inner, self.connection, self.limit = inner, connection, limit
        self.refused = False
        self.received = 0

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if length > self.limit:
            self.refused = True
            body = too_large_answer(length, self.limit)
            self.connection.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"),
                httputil.HTTPHeaders({"Content-Type": "application/json", "Content-Length": str(len(body)),
                                      "Connection": "close"}), body)
            return None  # finished once the body is read: Tornado closes at once (a reset) if finished earlier
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        if self.refused:
            return None  # thrown away
        self.received += len(chunk)
        if self.received > self.limit:  # a chunked body past the limit
            self.refused = True
            self.inner.on_connection_close()
            close = getattr(self.connection, "close", None)
            if close is not None:
                close()
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if self.refused:
            self.connection.finish()
        else:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


class BodyLimit(httputil.HTTPServerConnectionDelegate):
    """The application, with bodies over ``limit`` bytes refused with 413."""

    def __init__(self, application: httputil.HTTPServerConnectionDelegate, limit: int) -> None:
        self.application, self.limit = application, limit

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Limited(self.application.start_request(server_conn, request_conn), request_conn, self.limit)

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)


#: What Tornado itself still refuses by closing: a body this large is not even read and thrown away.
DISCARD_LIMIT = 1024 * MB


def limited_server(application: httputil.HTTPServerConnectionDelegate, limit: int, **kwargs: Any) -> HTTPServer:
    return HTTPServer(BodyLimit(application, limit), max_body_size=max(limit, DISCARD_LIMIT), **kwargs)
