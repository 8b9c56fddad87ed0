"""Share links over HTTP: the viewer's routes (``r/<id>`` reports, ``d/<id>`` dashboards, which
may be public), the owner's JSON API (``api/links``) and the "My links" / "Shared with me" pages.

Bodies are checked against the published schemas (``validation``) before the manager sees them.
Refusals are ``errors.SharingError``s, answered by ``errors.http_error`` like everywhere in sharing:
bad input 400 with a message; another user's link 403; an unknown link 404, counted against the
client's guess budget (429 once spent); a revoked or expired link 410; the hub failing 502.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jupyterhub.utils import url_path_join
from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from core.dashboards import DEFAULT_APP
from service.handlers import APIHandler, PageHandler
from service.metrics import record_report_view
from service.sharing.access import Viewer
from service.sharing.errors import (
    AnswersSharingErrors,
    HubUnavailable,
    Invalid,
    NotFound,
    RateLimited,
    SharingError,
    http_error,
)
from service.sharing.manager import ShareManager
from service.sharing.render import STATIC, lab_static_dir, mathjax_dir, report_headers
from service.sharing.storage import LINK_ID
from service.sharing.validation import validate


class _SharingMixin(AnswersSharingErrors):
    """Sharing's handlers: the manager, the guess budget, and its errors answered by ``errors.http_error``."""

    settings: Any
    request: Any

    if TYPE_CHECKING:
        @property
        def user_name(self) -> str: ...

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
            raise RateLimited(wait)

    def refused(self, error: SharingError) -> None:
        if isinstance(error, NotFound):
            limiter = self.settings["titan"].guess_limiter
            for key in self.client_keys(self.user_name or None):
                limiter.miss(key)

    async def groups_of(self, name: str) -> list[str]:
        try:
            status, body = await self.settings["titan"].hub.request("GET", f"/users/{quote(name, safe='')}")
        except ConnectionError as error:
            raise HubUnavailable(str(error)) from None
        return list((body or {}).get("groups") or []) if status == 200 else []


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
        if not LINK_ID.match(link_id) or self.sharing.links.snapshot(link_id) is None:
            raise NotFound()
        if name is None and self.sharing.needs_login(link_id):
            self.redirect(self.get_login_url())
            return
        viewer = Viewer(name, frozenset(), bool(self.current_user and self.current_user.get("admin")))
        opened = await self.sharing.open(link_id, self.kind, viewer, self.groups_of)
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
        self.finish(json.dumps({"links": self.sharing.links.owned(self.user_name)}))

    async def post(self) -> None:
        model = await self.sharing.publish(self.user_name, validate(self.body(), "LinkPublish"))
        self.set_status(201)
        self.finish(json.dumps(model))


class LinkAPIHandler(_SharingMixin, APIHandler):
    def get(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        self.finish(json.dumps(self.sharing.links.get_owned(link_id, self.user_name)))

    async def patch(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        request = validate(self.body(), "LinkUpdate")
        self.finish(json.dumps(await self.sharing.update(link_id, self.user_name, request)))

    async def delete(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        self.finish(json.dumps(await self.sharing.revoke(link_id, self.user_name)))


class RepublishAPIHandler(_SharingMixin, APIHandler):
    async def post(self, link_id: str) -> None:
        self.check_guess_budget(self.user_name)
        self.finish(json.dumps(await self.sharing.republish(link_id, self.user_name)))


class SharedAPIHandler(_SharingMixin, APIHandler):
    async def get(self) -> None:
        groups = frozenset(await self.groups_of(self.user_name))
        self.finish(json.dumps({"links": self.sharing.links.shared_with(Viewer(self.user_name, groups))}))


# ---- pages ---------------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def form_request(arguments: dict[str, list[bytes]], publish: bool) -> dict[str, Any]:
    """The publish / change form as an API request (validated against the schemas like any request)."""
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
            raise Invalid("choose when the link expires from the list") from None
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
        self.render_page("links.html", links=self.sharing.links.owned(self.user_name), error=error, base=base,
                         public_links=self.sharing.config.public_links)

    async def post(self) -> None:
        try:
            request = validate(form_request(self.request.body_arguments, publish=True), "LinkPublish")
            await self.sharing.publish(self.user_name, request)
        except SharingError as error:
            answer = http_error(error)
            self.get(error=answer.log_message or "", status=answer.status_code)
            return
        self.redirect(url_path_join(self.settings["prefix"], "links"))


class LinkActionPage(_SharingMixin, PageHandler):
    async def post(self, link_id: str, action: str) -> None:
        self.check_guess_budget(self.user_name)
        try:
            if action == "revoke":
                await self.sharing.revoke(link_id, self.user_name)
            elif action == "republish":
                await self.sharing.republish(link_id, self.user_name)
            else:
                request = validate(form_request(self.request.body_arguments, publish=False), "LinkUpdate")
                await self.sharing.update(link_id, self.user_name, request)
        except SharingError as error:
            answer = http_error(error)
            if answer.status_code in (403, 404, 429):
                raise  # the error page, as for any other link
            LinksPage.get(self, error=answer.log_message or "", status=answer.status_code)
            return
        self.redirect(url_path_join(self.settings["prefix"], "links"))


class SharedPage(_SharingMixin, PageHandler):
    async def get(self) -> None:
        groups = frozenset(await self.groups_of(self.user_name))
        self.render_page("shared.html", links=self.sharing.links.shared_with(Viewer(self.user_name, groups)))


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
