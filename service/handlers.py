"""Pages and the JSON API. Every request is authenticated through the hub (HubOAuth: the
browser's cookie, or a hub token in ``Authorization``); a user sees and changes only their own
settings and status (403 otherwise). Cookie-authenticated POST/PUT need the XSRF token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado.log import app_log
from tornado.web import HTTPError, RequestHandler

from core.dashboards import APP_NAMES, APP_SUFFIXES
from service.autosave import WorkspaceError
from service.db import AutosaveRepo, AutosaveUser, CloneRepo
from service.openapi import openapi_document
from service.settings import SettingsError, UserSettings, parse_form, parse_json

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))
TEMPLATES.globals["dashboard_apps"] = [(app, APP_NAMES[app], " or ".join(suffixes))
                                       for app, suffixes in APP_SUFFIXES.items()]


class _Quiet:
    """Log errors with the path only: a query string may hold an OAuth code or state."""

    request: Any

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, HTTPError):
            app_log.info("%s %s %s: %s", value.status_code, self.request.method, self.request.path,
                         value.log_message or "")
        else:
            app_log.error("Uncaught exception %s %s", self.request.method, self.request.path, exc_info=(typ, value, tb))


class _ApplicationHubAuth:
    """Use the application's one HubOAuth (it holds the PKCE verifiers), not a per-class one."""

    settings: Any

    @property
    def hub_auth(self) -> Any:
        return self.settings["hub_auth"]

    @hub_auth.setter
    def hub_auth(self, value: Any) -> None:
        pass


class OAuthCallbackHandler(_ApplicationHubAuth, _Quiet, HubOAuthCallbackHandler):
    """The OAuth callback, with the application's HubOAuth."""


class BaseHandler(_ApplicationHubAuth, _Quiet, HubOAuthenticated, RequestHandler):
    @property
    def titan(self) -> Any:
        return self.settings["titan"]

    def prepare(self) -> None:
        user = self.current_user
        if user is None:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())
                return
            raise HTTPError(403, "not signed in")
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            self.check_xsrf_cookie()  # no-op for token-authenticated calls

    @property
    def user_name(self) -> str:
        name: str = self.current_user["name"]
        return name

    def own(self, name: str) -> str:
        """The path's user, which must be the caller: nobody reads or changes another's autosave."""
        if self.current_user.get("kind", "user") != "user" or name != self.user_name:
            raise HTTPError(403, "you may only see and change your own autosave")
        return name

    def settings_model(self, name: str) -> dict[str, Any]:
        with self.titan.db.session() as session:
            clones = [c.status() for c in session.query(CloneRepo).filter_by(user_name=name).order_by(CloneRepo.id)]
            user = session.get(AutosaveUser, name)
            if user is None:
                return {"user": name, "enabled": False, "interval": self.titan.autosave.default_interval,
                        "repositories": [], "strip_outputs": False, "clone": clones}
            return {"user": name, "enabled": user.enabled, "interval": user.interval,
                    "repositories": [repo.status() for repo in user.repos], "strip_outputs": user.strip_outputs,
                    "clone": clones}

    def save_settings(self, name: str, settings: UserSettings) -> None:
        enabled, interval, paths = settings.enabled, settings.interval, settings.repositories
        if interval is not None and interval < self.titan.autosave.min_interval:
            raise SettingsError(f"the interval must be at least {self.titan.autosave.min_interval} seconds")
        with self.titan.db.session() as session:
            user = session.get(AutosaveUser, name)
            if user is None:
                user = AutosaveUser(name=name, interval=self.titan.autosave.default_interval, repos=[])
                session.add(user)
            user.enabled = enabled
            if interval is not None:
                user.interval = interval
            wanted = {item["path"]: item.get("remote") or "origin" for item in paths}
            for repo in list(user.repos):
                if repo.path not in wanted:
                    user.repos.remove(repo)
                else:
                    repo.remote = wanted.pop(repo.path)
            for path, remote in wanted.items():
                user.repos.append(AutosaveRepo(path=path, remote=remote, left_out=[]))
            if settings.strip_outputs is not None:
                user.strip_outputs = settings.strip_outputs
            if settings.clone is not None:
                self._save_clones(session, name, settings.clone)

    @staticmethod
    def _save_clones(session: Any, name: str, clones: list[dict[str, str]]) -> None:
        """The user's own clone list; rows a profile added stay (they are status only)."""
        wanted = {item["path"]: item["url"] for item in clones}
        for row in session.query(CloneRepo).filter_by(user_name=name):
            if row.path in wanted:
                url = wanted.pop(row.path)
                if row.url != url or row.source != "settings":
                    row.url, row.source, row.state, row.message = url, "settings", "waiting", ""
            elif row.source == "settings":
                session.delete(row)
        for path, url in wanted.items():
            session.add(CloneRepo(user_name=name, url=url, path=path, source="settings"))

    def repo_of(self, name: str, repo_id: str) -> int:
        with self.titan.db.session() as session:
            repo = session.get(AutosaveRepo, int(repo_id))
            if repo is None or repo.user_name != name:
                raise HTTPError(404, "no such repository in your autosave settings")
            return int(repo.id)

    def server_for(self, name: str) -> str:
        running = self.titan.autosave.running.get(name) or set()
        return sorted(running)[0] if running else ""


class APIHandler(BaseHandler):
    def get_login_url(self) -> str:
        raise HTTPError(403, "not signed in")

    def prepare(self) -> None:
        self.set_header("Content-Type", "application/json")
        super().prepare()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def body(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "the body is not JSON") from None


class OpenAPIHandler(APIHandler):
    def get(self) -> None:
        self.finish(openapi_document(self.settings["prefix"]))


class SettingsAPIHandler(APIHandler):
    def get(self, name: str) -> None:
        self.finish(self.settings_model(self.own(name)))

    def put(self, name: str) -> None:
        self.own(name)
        try:
            self.save_settings(name, parse_json(self.body()))
        except SettingsError as error:
            raise HTTPError(400, str(error)) from None
        self.finish(self.settings_model(name))


class RepoAPIHandler(APIHandler):
    async def get(self, name: str, repo_id: str) -> None:
        repo = self.repo_of(self.own(name), repo_id)
        with self.titan.db.session() as session:
            found = session.get(AutosaveRepo, repo)
            status = found.status() if found else {}
        status["commits"] = await self.titan.autosave.history(name, repo)
        self.finish(status)


class SnapshotAPIHandler(APIHandler):
    async def post(self, name: str, repo_id: str) -> None:
        repo = self.repo_of(self.own(name), repo_id)
        self.finish(await self.titan.autosave.run_repo(name, repo, self.server_for(name), "on request"))


class RestoreAPIHandler(APIHandler):
    async def post(self, name: str, repo_id: str) -> None:
        repo = self.repo_of(self.own(name), repo_id)
        commit = self.body().get("commit")
        if not isinstance(commit, str) or not commit:
            raise HTTPError(400, "give the autosave commit to restore as 'commit'")
        try:
            self.finish(await self.titan.autosave.restore(name, repo, commit))
        except WorkspaceError as error:
            raise HTTPError(400, str(error)) from None


class PageHandler(BaseHandler):
    def render_page(self, template: str, **context: Any) -> None:
        page = TEMPLATES.get_template(template).render(
            prefix=self.settings["prefix"], hub_prefix=self.settings["hub_prefix"], user=self.user_name,
            xsrf=self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token, **context)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(TEMPLATES.get_template("error.html").render(
            prefix=self.settings["prefix"], hub_prefix=self.settings["hub_prefix"], status=status_code,
            message=message))


class HomeHandler(PageHandler):
    def get(self) -> None:
        self.redirect(url_path_join(self.settings["prefix"], "autosave"))


class AutosavePage(PageHandler):
    async def get(self, error: str = "", restored: dict[str, Any] | None = None) -> None:
        model = self.settings_model(self.user_name)
        for repo in model["repositories"]:
            repo["commits"] = await self.titan.autosave.history(self.user_name, repo["id"])
        self.render_page("autosave.html", model=model, error=error, restored=restored,
                         min_interval=self.titan.autosave.min_interval)

    async def post(self) -> None:
        try:
            self.save_settings(self.user_name, parse_form(
                {k: [v.decode(errors="replace") for v in vs] for k, vs in self.request.body_arguments.items()}))
        except SettingsError as error:
            self.set_status(400)
            await self.get(error=str(error))
            return
        self.redirect(url_path_join(self.settings["prefix"], "autosave"))


class SnapshotPage(PageHandler):
    async def post(self, repo_id: str) -> None:
        repo = self.repo_of(self.user_name, repo_id)
        await self.titan.autosave.run_repo(self.user_name, repo, self.server_for(self.user_name), "on request")
        self.redirect(url_path_join(self.settings["prefix"], "autosave"))


class RestorePage(AutosavePage):
    async def post(self, repo_id: str) -> None:  # type: ignore[override]
        repo = self.repo_of(self.user_name, repo_id)
        try:
            result = await self.titan.autosave.restore(self.user_name, repo, self.get_body_argument("commit", ""))
        except WorkspaceError as error:
            self.set_status(400)
            await self.get(error=str(error))
            return
        await self.get(restored=result)


NAME = r"([^/]+)"
ROUTES: list[tuple[str, type[RequestHandler]]] = [
    (r"", HomeHandler),
    (r"autosave/?", AutosavePage),
    (r"autosave/repos/(\d+)/snapshot", SnapshotPage),
    (r"autosave/repos/(\d+)/restore", RestorePage),
    (r"api/openapi.json", OpenAPIHandler),
    (rf"api/users/{NAME}/autosave", SettingsAPIHandler),
    (rf"api/users/{NAME}/autosave/repos/(\d+)", RepoAPIHandler),
    (rf"api/users/{NAME}/autosave/repos/(\d+)/snapshot", SnapshotAPIHandler),
    (rf"api/users/{NAME}/autosave/repos/(\d+)/restore", RestoreAPIHandler),
]
