"""``TitanService``: the hub-managed service at /services/titan/ (autosave and share links).

A ``traitlets.config.Application`` like jupyterhub-idle-culler: every setting is a config trait,
``launch_instance()`` starts it, and the first scheduler pass runs at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import url_path_join
from tornado.ioloop import PeriodicCallback
from tornado.web import Application as WebApplication
from traitlets import Bool, Float, Integer, List, Unicode, default
from traitlets.config import Application

from service import admin as operations
from service import handlers
from service.autosave.push import write_askpass
from service.body_limit import limited_server
from service.db import DEFAULT_INTERVAL, Database
from service.engine import Engine, EngineConfig
from service.hub import HubClient
from service.sharing.handlers import routes as sharing_routes
from service.sharing.manager import ShareManager, SharingConfig
from service.sharing.public_origin import make_public_app
from service.sharing.ratelimit import GuessLimiter
from service.sharing.storage import ReportStore


def docker_volume_path(template: str) -> Any:
    """A resolver user -> host path of the user's home volume (``docker volume inspect``)."""
    import docker

    from spawner.container import home_volume_name

    client = docker.from_env()

    def resolve(user: str) -> Path:
        name = home_volume_name(template, user)
        try:
            volume = client.volumes.get(name)
        except docker.errors.NotFound:
            raise LookupError(f"home volume {name} does not exist yet (start a server once)") from None
        return Path(volume.attrs["Mountpoint"])

    return resolve


def docker_profile_of(deployment_label: str = "") -> Any:
    """A resolver (user, server) -> the ``titan.profile`` label of that server's running container."""
    import docker

    from spawner.container import LABEL_OWNER, LABEL_PROFILE, LABEL_SERVER

    client = docker.from_env()

    def resolve(user: str, server: str) -> str | None:
        labels = [f"{LABEL_OWNER}={user}", f"{LABEL_SERVER}={server}"]
        if deployment_label:
            labels.append(f"titan.deployment={deployment_label}")
        found = client.containers.list(filters={"label": labels})
        return found[0].labels.get(LABEL_PROFILE) if found else None

    return resolve


class ProfileClones:
    """The profiles' ``clone`` lists, reloaded when a profile file changes (as the spawner does)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._stamp: tuple[float, ...] | None = None
        self._value: tuple[str, dict[str, tuple[str, ...]]] = ("", {})

    def __call__(self) -> tuple[str, dict[str, tuple[str, ...]]]:
        from images.recipes import catalog
        from spawner.profiles import load_profiles, profile_files

        if not str(self.directory) or not self.directory.is_dir():
            return ("", {})
        files = profile_files(self.directory)
        stamp = tuple(f.stat().st_mtime for f in files)
        if stamp != self._stamp:
            try:
                profiles = load_profiles(files, images=[n for n, r in catalog().items() if r.builder == "docker"])
            except ValueError as error:
                logging.getLogger("titan.service").warning("Profiles not loaded: %s", error)
                return self._value
            self._value = (profiles.default.slug, {p.slug: p.clone for p in profiles.profiles if p.clone})
            self._stamp = stamp
        return self._value


class TitanService(Application):
    name = "titan-service"
    description = "Titan's hub service: git autosave of users' repositories, and share links."

    state_dir = Unicode(
        help="""Where the service keeps its database (by default), autosave stores and askpass script.
        Default: $TITAN_STATE_DIR/service, else ./state/service. Example: /srv/titan/state/service""",
    ).tag(config=True)

    @default("state_dir")
    def _default_state_dir(self) -> str:
        return str(Path(os.environ.get("TITAN_STATE_DIR") or "state") / "service")

    db_url = Unicode(
        help="""sqlalchemy URL of the service's database. Default: sqlite in state_dir
        (``sqlite:///<state_dir>/titan-service.sqlite``). Example: postgresql://titan@db/titan""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return f"sqlite:///{Path(self.state_dir).resolve() / 'titan-service.sqlite'}"

    port = Integer(8020, help="Port the service listens on (127.0.0.1). Default 8020.").tag(config=True)
    ip = Unicode("127.0.0.1", help="""Address the service listens on: the hub config gives the Titan address
        (core.network), where the proxy and containers reach it. Default 127.0.0.1.""").tag(config=True)
    public_ip = Unicode("127.0.0.1", help="""Address the public dashboards' origin listens on
        (public_dashboard_port), behind the admin's own hostname. Default 127.0.0.1.""").tag(config=True)

    github_url = Unicode(
        "https://github.com",
        help="""The GitHub the users' tokens belong to (https://github.com or a GitHub Enterprise URL).
        Pushes go only to remotes on this host: the token is never sent anywhere else.""",
    ).tag(config=True)

    home_volume_template = Unicode(
        "titan-home-{username}",
        help="The users' home volume names, as the spawner's home_volume_template ({username} escaped).",
    ).tag(config=True)

    branch_template = Unicode(
        "autosave/{user}/{server}",
        help="""Autosave branch name; {user} and {server} ("default" for the default server) are
        filled in. Default autosave/{user}/{server}.""",
    ).tag(config=True)

    max_body_mb = Float(10.0, help="""Largest request body the service takes, in MB (its API takes small JSON
        documents); a larger one is answered 413 with a JSON message, its body never read.
        titan.yaml service.max_body_mb. Default 10.""").tag(config=True)
    stop_timeout = Float(5.0, help="""Seconds the service gives its final autosave snapshots when it
        stops (the hub is stopping, and its servers stop next), so that `make down` stays short.
        Default 5.""").tag(config=True)
    check_interval = Float(
        10.0, help="Seconds between scheduler passes (stopped servers are noticed within this). Default 10.",
    ).tag(config=True)

    default_interval = Integer(DEFAULT_INTERVAL, help="Default autosave interval of a user, in seconds (600).").tag(
        config=True)
    min_interval = Integer(60, help="Shortest autosave interval a user may choose, in seconds (60).").tag(config=True)

    max_file_size = Integer(
        10 * 1024 * 1024,
        help="Files larger than this many bytes are left out of snapshots and listed. Default 10 MB.",
    ).tag(config=True)

    concurrency = Integer(4, help="Repositories snapshotted or pushed at the same time. Default 4.").tag(config=True)
    retry_base = Float(30.0, help="First retry delay after a network error, in seconds (doubles). Default 30.").tag(
        config=True)
    retry_max = Float(1800.0, help="Longest retry delay after network errors, in seconds. Default 1800.").tag(
        config=True)
    autosave = Bool(True, help="Run the autosave scheduler (pages and API are served either way).").tag(config=True)

    profiles_dir = Unicode(
        "", help="""The spawner's profiles directory, for the profiles' ``clone`` lists (repositories cloned
        into the home when a server with that profile starts). Empty: no profile clones.""",
    ).tag(config=True)
    deployment = Unicode("", help="The deployment label (titan.deployment) of this hub's containers.").tag(
        config=True)
    home_owner = Unicode(
        "1000:1000", help="uid:gid that files cloned into a home volume get (the images' jovyan). Default 1000:1000.",
    ).tag(config=True)

    public_links = Bool(False, help="""Allow links anyone can open without logging in (reports only).
        Default False: every link needs a login.""").tag(config=True)
    frame_ancestors = List(Unicode(), help="""Origins allowed to embed reports in a frame (CSP
        frame-ancestors), for example ["https://intranet.example.org"]. Default []: nowhere.""").tag(config=True)
    max_notebook_mb = Float(100.0, help="Largest notebook that may be published, in MB. Default 100.").tag(
        config=True)
    versions_kept = Integer(10, help="Rendered versions of a report kept when it is republished. Default 10.").tag(
        config=True)
    dashboard_profile = Unicode("", help="""Profile slug dashboards run with when the publisher names none.
        Default "": the spawner's default profile.""").tag(config=True)
    guess_limit = Integer(20, help="""Unknown link ids one client (address, and user when logged in) may
        try within guess_window seconds before every lookup answers 429. Default 20.""").tag(config=True)
    public_dashboard_port = Integer(0, help="""Port of the separate origin that serves public dashboards
        (127.0.0.1, behind the admin's own hostname). Default 0: no public dashboards.""").tag(config=True)
    public_dashboard_url = Unicode("", help="""The public dashboards' origin as visitors reach it, for
        example https://dashboards.example.org. Default: http://127.0.0.1:<public_dashboard_port>.""").tag(
        config=True)
    hub_public_url = Unicode("http://127.0.0.1:8000", help="""Where the hub's proxy answers, for the
        public dashboards' origin to forward to. Default http://127.0.0.1:8000.""").tag(config=True)
    guess_window = Float(60.0, help="Seconds over which unknown-link tries are counted. Default 60.").tag(
        config=True)

    aliases = {"port": "TitanService.port", "state-dir": "TitanService.state_dir", "db-url": "TitanService.db_url",
               "log-level": "Application.log_level"}

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        logging.getLogger("titan").handlers = self.log.handlers
        logging.getLogger("titan").setLevel(self.log.level)
        state = Path(self.state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        self.db = Database(self.db_url)
        hub = HubClient(os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
                        os.environ.get("JUPYTERHUB_API_TOKEN", ""))
        uid, _, gid = self.home_owner.partition(":")
        self.engine = Engine(
            EngineConfig(state_dir=state, github_url=self.github_url, branch_template=self.branch_template,
                         max_file_size=self.max_file_size, concurrency=self.concurrency,
                         retry_base=self.retry_base, retry_max=self.retry_max,
                         home_uid=int(uid), home_gid=int(gid or uid)),
            self.db, hub, docker_volume_path(self.home_volume_template), write_askpass(state),
            profiles=ProfileClones(self.profiles_dir), profile_of=docker_profile_of(self.deployment))
        self.hub = hub
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/titan/")
        self.sharing = ShareManager(
            SharingConfig(public_links=self.public_links, frame_ancestors=list(self.frame_ancestors),
                          max_notebook_bytes=int(self.max_notebook_mb * 1024 * 1024),
                          versions_kept=self.versions_kept, dashboard_profile=self.dashboard_profile,
                          public_dashboard_url=self._public_dashboard_url(),
                          static_url=url_path_join(prefix, "static/"), prefix=prefix,
                          hub_base=os.environ.get("JUPYTERHUB_BASE_URL", "/")),
            self.db, ReportStore(state / "reports"), hub, docker_volume_path(self.home_volume_template))
        self.guess_limiter = GuessLimiter(self.guess_limit, self.guess_window)
        operations.setup(self)  # usage accounting, admin pages, metrics (service/admin.py)

    def _public_dashboard_url(self) -> str:
        if not (self.public_links and self.public_dashboard_port):
            return ""
        return self.public_dashboard_url or f"http://127.0.0.1:{self.public_dashboard_port}"

    def make_web_app(self) -> WebApplication:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/titan/")
        hub_base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        auth = HubOAuth(api_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""), cache_max_age=60)
        settings = {
            "titan": self, "hub_auth": auth, "prefix": prefix, "hub_prefix": url_path_join(hub_base, "hub/"),
            "cookie_secret": os.urandom(32), "xsrf_cookies": False,  # checked in BaseHandler.prepare
            "login_url": auth.login_url, "log_function": self._log_request,
        }
        rules: list[Any] = [(url_path_join(prefix, "oauth_callback"), handlers.OAuthCallbackHandler)]
        rules += sharing_routes(prefix)
        rules += [(url_path_join(prefix, pattern), handler) for pattern, handler in handlers.ROUTES]
        rules += operations.routes(prefix)
        return WebApplication(rules, **settings)

    def _log_request(self, handler: Any) -> None:
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING
        # the path only: no query string (it may carry OAuth codes)
        self.log.log(level, "%s %s %s %.1fms", status, handler.request.method, handler.request.path,
                     1000 * handler.request.request_time())

    async def _tick(self) -> None:
        try:
            await self.engine.tick()
        except Exception:
            self.log.exception("Autosave pass failed")

    async def _expire_links(self) -> None:
        try:
            self.sharing.flush_views()
            ended = await self.sharing.expire_due()
        except Exception:
            self.log.exception("Ending expired dashboard links failed")
            return
        if ended:
            self.log.info("Ended %d expired dashboard link(s)", ended)

    async def serve(self) -> None:
        limit = int(self.max_body_mb * 1024 * 1024)
        server = limited_server(self.make_web_app(), limit, xheaders=True)
        server.listen(self.port, self.ip)
        if self._public_dashboard_url():
            public = limited_server(make_public_app(self.sharing, self.guess_limiter, self.hub_public_url,
                                                   os.environ.get("JUPYTERHUB_API_TOKEN", "")), limit, xheaders=True)
            public.listen(self.public_dashboard_port, self.public_ip)
            self.log.info("Public dashboards on %s", self._public_dashboard_url())
        self.log.info("Titan service on http://%s:%s%s", self.ip, self.port,
                      os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/titan/"))
        await self._expire_links()
        PeriodicCallback(self._expire_links, min(self.check_interval, 5.0) * 1000).start()
        await operations.start(self, self.check_interval)  # usage: first pass at once, then periodic
        if self.autosave:
            await self._tick()  # the first pass at once
            PeriodicCallback(self._tick, self.check_interval * 1000).start()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):  # the hub stops its services with SIGTERM
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
        await stopping.wait()
        server.stop()
        self.log.info("Stopping: %d view(s) counted since the last write saved", self.sharing.flush_views())
        if self.autosave:
            try:
                await asyncio.wait_for(self.engine.final_pass(), self.stop_timeout)
            except TimeoutError:
                self.log.warning("Stopping: final snapshots not done after %.0f s; the next start takes them "
                                 "(nothing is lost: the files stay in the homes)", self.stop_timeout)

    def start(self) -> None:
        asyncio.run(self.serve())


main = TitanService.launch_instance

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
