"""Sharing's own errors, and the one place they become HTTP answers.

The links, reports and dashboards raise these; the JSON API, the pages and the public origin all
answer them through ``http_error`` (status, the user's message, extra headers), so a refusal reads
the same wherever it happens. A message is for the person who asked: it says what to do, and never
holds a credential.
"""

from __future__ import annotations

import logging
from typing import Any

from tornado.web import HTTPError

log = logging.getLogger("titan.sharing")


class SharingError(Exception):
    """A sharing rule refused a request. ``str(error)`` is shown to the user; empty means the
    status's own message (``ANSWERS``)."""


class Invalid(SharingError):
    """Bad input: the message names the field and what it must be."""


class Forbidden(SharingError):
    """The caller may not do this (another user's link, a link not shared with them)."""


class NotFound(SharingError):
    """No such link. Counts against the client's guess budget."""


class Gone(SharingError):
    """The link was revoked or has expired, or what it serves is no longer there."""


class RateLimited(SharingError):
    """Too many unknown links were tried from this client; ``retry_after`` seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many unknown links were tried; wait {retry_after} seconds")
        self.retry_after = retry_after


class HubUnavailable(SharingError):
    """The hub failed or refused a dashboard action the user could not have avoided."""


#: status and the message used when the error has none of its own
ANSWERS: dict[type[SharingError], tuple[int, str]] = {
    Invalid: (400, "the request is not valid"),
    Forbidden: (403, "you may not open or change this link"),
    NotFound: (404, "There is no such link. Check that you copied all of it."),
    Gone: (410, "this link has ended"),
    RateLimited: (429, "too many unknown links were tried; wait a minute"),
    HubUnavailable: (502, "the hub did not answer; try again in a minute"),
}


class SharingHTTPError(HTTPError):
    """A SharingError as tornado's HTTPError, with the headers its answer needs (``Retry-After``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(status, message)
        self.headers = headers


def http_error(error: SharingError) -> SharingHTTPError:
    """The HTTP answer to ``error``: the one mapping used by the API, the pages and the public origin."""
    status, default = next(answer for kind, answer in ANSWERS.items() if isinstance(error, kind))
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
    return SharingHTTPError(status, str(error) or default, headers)


def headers_of(error: BaseException | None) -> dict[str, str]:
    """Extra headers an error answer carries (send_error clears the ones set before)."""
    return dict(error.headers) if isinstance(error, SharingHTTPError) else {}


class AnswersSharingErrors:
    """Mixin for tornado handlers: a SharingError escaping a handler is answered by ``http_error``
    (logged as a refusal, not as a bug), and ``refused`` sees it first (a NotFound counts as a guess)."""

    request: Any

    def refused(self, error: SharingError) -> None:
        """Called for each SharingError before it is answered."""

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, SharingError):
            self.refused(error)
            answer = http_error(error)
            kwargs["exc_info"] = (type(answer), answer, None)
            status_code = answer.status_code
        super().send_error(status_code, **kwargs)  # type: ignore[misc]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        for name, value in headers_of(kwargs.get("exc_info", (None, None, None))[1]).items():
            self.set_header(name, value)  # type: ignore[attr-defined]
        super().write_error(status_code, **kwargs)  # type: ignore[misc]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, SharingError):
            log.info("%s %s %s: %s", http_error(value).status_code, self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)  # type: ignore[misc]
