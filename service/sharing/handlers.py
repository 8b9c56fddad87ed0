"""Share links over HTTP: the viewer's routes (``r/<id>`` reports, ``d/<id>`` dashboards, which
may be public), the owner's JSON API (``api/links``) and the "My links" / "Shared with me" pages.

Errors a user caused are 400 with a message; another user's link is 403; an unknown link is 404
and counts against the client's guess budget (429 once spent); a revoked or expired link is 410.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from jupyterhub.utils import url_path_join
from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from core.dashboards import DEFAULT_APP
from service.handlers import APIHandler, PageHandler
from service.metrics import record_report_view
from service.sharing.access import LinkError, Viewer
from service.sharing.manager import LinkGone, LinkNotFound, NotOwner, ShareManager
from service.sharing.render import STATIC, lab_static_dir, mathjax_dir, report_headers
from service.sharing.storage import LINK_ID


class _SharingMixin:
    settings: Any
    request: Any

    @property
    def sharing(self) -> ShareManager:
        manager: ShareManager = self.settings["titan"].sharing
        return manager

    def client_keys(self, user: str | None) -> list[str]:
        keys = [f"ip:{self.request.remote_ip}"]
        if user:
            keys.append(f"user:{user}")
        return keys

    def check_guess_budget(self, user: str | None) -> None:
        limiter = self.settings["titan"].guess_limiter
        wait = max(limiter.retry_after(key) for key in self.client_keys(user))
        if wait:
            self.retry_after = wait
            raise HTTPError(429, f"too many unknown links were tried; wait {wait} seconds")

    retry_after = 0

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 429 and self.retry_after:  # send_error cleared the headers set before
            self.set_header("Retry-After", str(self.retry_after))  # type: ignore[attr-defined]
        super().write_error(status_code, **kwargs)  # type: ignore[misc]

    def missed(self, user: str | None) -> None:
        limiter = self.settings["titan"].guess_limiter
        for key in self.client_keys(user):
            limiter.miss(key)

    async def groups_of(self, name: str) -> list[str]:
        status, body = await self.settings["titan"].hub.request("GET", f"/users/{quote(name, safe='')}")
        return list((body or {}).get("groups") or []) if status == 200 else []


async def _call(handler: Any, action: Callable[[], Awaitable[Any]]) -> Any:
    """Run a manager action, turning its errors into HTTP answers."""
    try:
        return await action()
    except LinkError as error:
        raise HTTPError(400, str(error)) from None
    except LinkNotFound:
        handler.missed(handler.user_name)
        raise HTTPError(404, "no such link") from None
    except NotOwner as error:
        raise HTTPError(403, str(error)) from None
    except LinkGone as error:
        raise HTTPError(410, str(error)) from None
    except (RuntimeError, ConnectionError) as error:
        raise HTTPError(502, str(error)) from None


# ---- the viewer ----------------------------------------------------------------------------------


class ViewHandler(_SharingMixin, PageHandler):
    """``r/<id>`` and ``d/<id>``: open to whoever the link allows, public links without login."""

    kind = "report"

    def prepare(self) -> None:  # no forced login: public links open for anyone
        if self.request.method not in ("GET", "HEAD"):
            raise HTTPError(405)

    @property
    def user_name(self) -> str:
        user = self.current_user
        return str(user["name"]) if user and user.get("kind", "user") == "user" else ""

    async def get(self, link_id: str) -> None:
        name = self.user_name or None
        self.check_guess_budget(name)
        if not LINK_ID.match(link_id) or self.sharing.snapshot(link_id) is None:
            self.missed(name)
            raise HTTPError(404, "There is no such link. Check that you copied all of it.")
        if name is None and self.sharing.needs_login(link_id):
            self.redirect(self.get_login_url())
            return
        viewer = Viewer(name, frozenset(), bool(self.current_user and self.current_user.get("admin")))
        try:
            opened = await self.sharing.open(link_id, self.kind, viewer, self.groups_of)
        except LinkNotFound:
            self.missed(name)
            raise HTTPError(404, "There is no such link. Check that you copied all of it.") from None
        except PermissionError as error:
            raise HTTPError(403, str(error)) from None
        except LinkGone as error:
            raise HTTPError(410, str(error)) from None
        except (RuntimeError, ConnectionError, LinkError) as error:
            raise HTTPError(502, str(error)) from None
        record_report_view(self.kind)
        if opened.redirect:
            self.redirect(opened.redirect)
            return
        for header, value in report_headers(self.sharing.config.frame_ancestors).items():
            self.set_header(header, value)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(opened.html)


class DashboardViewHandler(ViewHandler):
    kind = "dashboard"


class SharingStaticHandler(StaticFileHandler):
    """The report pages' scripts (MathJax and its settings); public, as public reports need them."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "public, max-age=86400")


# ---- the owner's API -----------------------------------------------------------------------------


class LinksAPIHandler(_SharingMixin, APIHandler):
    def get(self) -> None:
        self.finish(json.dumps({"links": self.sharing.owned(self.user_name)}))

    async def post(self) -> None:
        body = self.body()
        model = await _call(self, lambda: self.sharing.publish(self.user_name, body))
        self.set_status(201)
        self.finish(json.dumps(model))


class LinkAPIHandler(_SharingMixin, APIHandler):
    async def get(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        self.finish(json.dumps(await _call(self, self._get(link_id))))

    def _get(self, link_id: str) -> Callable[[], Awaitable[Any]]:
        async def get() -> Any:
            return self.sharing.get_owned(link_id, self.user_name)
        return get

    async def patch(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        body = self.body()
        self.finish(json.dumps(await _call(self, lambda: self.sharing.update(link_id, self.user_name, body))))

    async def delete(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        self.finish(json.dumps(await _call(self, lambda: self.sharing.revoke(link_id, self.user_name))))


class RepublishAPIHandler(_SharingMixin, APIHandler):
    async def post(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        self.finish(json.dumps(await _call(self, lambda: self.sharing.republish(link_id, self.user_name))))


class SharedAPIHandler(_SharingMixin, APIHandler):
    async def get(self) -> None:
        groups = frozenset(await self.groups_of(self.user_name))
        links = await self.sharing.shared_with(Viewer(self.user_name, groups))
        self.finish(json.dumps({"links": links}))


# ---- pages ---------------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def form_request(arguments: dict[str, list[bytes]], publish: bool) -> dict[str, Any]:
    """The publish / change form as an API request (validated by the manager like any request)."""
    def one(key: str) -> str:
        values = arguments.get(key) or [b""]
        return values[-1].decode("utf-8", errors="replace").strip()

    request: dict[str, Any] = {
        "access": {"mode": one("mode") or "users", "users": _names(one("users")), "groups": _names(one("groups"))},
    }
    custom, preset = one("expires_at"), one("expires_in")
    if custom:
        request["expires_at"] = custom
    elif preset:
        try:
            request["expires_at"] = {"in_seconds": int(preset)}
        except ValueError:
            raise LinkError("choose when the link expires from the list") from None
    else:
        request["expires_at"] = None
    if publish:
        request.update({"kind": one("kind") or "report", "path": one("path"), "hide_code": one("hide_code") == "on"})
        if one("title"):
            request["title"] = one("title")
        if request["kind"] == "dashboard":
            request["app"] = one("app") or DEFAULT_APP
            if one("profile"):
                request["profile"] = one("profile")
            if one("image"):
                request["image"] = one("image")
    return request


class LinksPage(_SharingMixin, PageHandler):
    def get(self, error: str = "", status: int = 200) -> None:
        self.set_status(status)
        base = f"{self.request.protocol}://{self.request.host}"
        self.render_page("links.html", links=self.sharing.owned(self.user_name), error=error, base=base,
                         public_links=self.sharing.config.public_links)

    async def post(self) -> None:
        try:
            request = form_request(self.request.body_arguments, publish=True)
            await _call(self, lambda: self.sharing.publish(self.user_name, request))
        except (LinkError, HTTPError) as error:
            self.get(error=_message(error), status=_status(error))
            return
        self.redirect(url_path_join(self.settings["prefix"], "links"))


class LinkActionPage(_SharingMixin, PageHandler):
    async def post(self, link_id: str, action: str) -> None:
        self.check_guess_budget(self.user_name)
        try:
            if action == "revoke":
                await _call(self, lambda: self.sharing.revoke(link_id, self.user_name))
            elif action == "republish":
                await _call(self, lambda: self.sharing.republish(link_id, self.user_name))
            else:
                request = form_request(self.request.body_arguments, publish=False)
                await _call(self, lambda: self.sharing.update(link_id, self.user_name, request))
        except (LinkError, HTTPError) as error:
            if isinstance(error, HTTPError) and error.status_code in (403, 404, 429):
                raise
            LinksPage.get(self, error=_message(error), status=_status(error))
            return
        self.redirect(url_path_join(self.settings["prefix"], "links"))


class SharedPage(_SharingMixin, PageHandler):
    async def get(self) -> None:
        groups = frozenset(await self.groups_of(self.user_name))
        self.render_page("shared.html", links=await self.sharing.shared_with(Viewer(self.user_name, groups)))


def _message(error: Exception) -> str:
    return (error.log_message or "") if isinstance(error, HTTPError) else str(error)


def _status(error: Exception) -> int:
    return error.status_code if isinstance(error, HTTPError) else 400


def routes(prefix: str) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    link = r"([^/]{1,100})"
    return [
        (url_path_join(prefix, r"static/mathjax/(.*)"), SharingStaticHandler, {"path": str(mathjax_dir())}),
        (url_path_join(prefix, r"static/nbconvert-lab/(.*)"), SharingStaticHandler, {"path": str(lab_static_dir())}),
        (url_path_join(prefix, r"static/(.*)"), SharingStaticHandler, {"path": str(STATIC)}),
        (url_path_join(prefix, rf"r/{link}"), ViewHandler, {}),
        (url_path_join(prefix, rf"d/{link}"), DashboardViewHandler, {}),
        (url_path_join(prefix, r"links/?"), LinksPage, {}),
        (url_path_join(prefix, rf"links/{link}/(update|revoke|republish)"), LinkActionPage, {}),
        (url_path_join(prefix, r"shared/?"), SharedPage, {}),
        (url_path_join(prefix, r"api/links"), LinksAPIHandler, {}),
        (url_path_join(prefix, rf"api/links/{link}"), LinkAPIHandler, {}),
        (url_path_join(prefix, rf"api/links/{link}/publish"), RepublishAPIHandler, {}),
        (url_path_join(prefix, r"api/shared"), SharedAPIHandler, {}),
    ]
