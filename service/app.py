"""``TitanService``: the hub-managed service at /services/titan/ (autosave, share links, usage and
admin pages), assembled in one place from its configuration file.

A ``traitlets.config.Application`` like jupyterhub-idle-culler: ``launch_instance()`` starts it. The
hub runs ``python -m service -f service/config.py``; that file turns titan.yaml into this
configuration (``service.configure``). ``initialize`` builds the parts, each a ``LoggingConfigurable``
with its own documented settings: ``HubClient`` (the one hub client), ``DockerHost`` (the one Docker
client), ``HubWatcher`` (one listing of the hub's active servers a pass, told to ``Autosave``,
``Clones`` at server start and ``UsageRecorder``), ``Operations`` (the admin page's actions).
"""

from __future__ import annotations

import asyncio
import copy
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
from service import handlers, metrics
from service.autosave.push import write_askpass
from service.body_limit import limited_server
from service.clones import Clones
from service.db import Database
from service.dockerhost import DockerHost
from service.engine import Autosave
from service.hub import HubClient
from service.profiles import ProfileClones
from service.sharing.handlers import routes as sharing_routes
from service.sharing.manager import ShareManager, SharingConfig
from service.sharing.public_origin import make_public_app
from service.sharing.ratelimit import GuessLimiter
from service.sharing.storage import ReportStore
from service.usage import UsageRecorder
from service.watcher import HubWatcher


class TitanService(Application):
    name = "titan-service"
    description = "Titan's hub service: git autosave of users' repositories, share links, usage and admin pages."

    config_file = Unicode(
        "", help="""The configuration file to load (traitlets Python config), as ``-f``. The hub gives
        service/config.py, which reads titan.yaml. Default "": none.""",
    ).tag(config=True)

    state_dir = Unicode(
        help="""Where the service keeps its database (by default), autosave stores and askpass script.
        Default: $TITAN_STATE_DIR/service, else ./state/service. Example: /srv/titan/state/service""",
    ).tag(config=True)

    @default("state_dir")
    def _default_state_dir(self) -> str:
        return str(Path(os.environ.get("TITAN_STATE_DIR") or "state") / "service")

    db_url = Unicode(
        help="""sqlalchemy URL of the service's database. titan.yaml service.db_url. Default: sqlite in
        state_dir (``sqlite:///<state_dir>/titan-service.sqlite``). Example: postgresql://titan@db/titan""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return f"sqlite:///{Path(self.state_dir).resolve() / 'titan-service.sqlite'}"

    port = Integer(8020, help="Port the service listens on. titan.yaml service.port. Default 8020.").tag(
        config=True)
    ip = Unicode("127.0.0.1", help="""Address the service listens on: the hub's config gives the Titan address
        (core.network), where the proxy and containers reach it. Default 127.0.0.1.""").tag(config=True)
    public_ip = Unicode("127.0.0.1", help="""Address the public dashboards' origin listens on
        (public_dashboard_port), behind the admin's own hostname. Default 127.0.0.1.""").tag(config=True)

    max_body_mb = Float(10.0, help="""Largest request body the service takes, in MB (its API takes small JSON
        documents); a larger one is answered 413 with a JSON message, its body never read.
        titan.yaml service.max_body_mb. Default 10.""").tag(config=True)
    stop_timeout = Float(5.0, help="""Seconds the service gives its final autosave snapshots when it
        stops (the hub is stopping, and its servers stop next), so that `make down` stays short.
        Default 5.""").tag(config=True)

    profiles_dir = Unicode(
        "", help="""The spawner's profiles directory, for the profiles' ``clone`` lists (repositories cloned
        into the home when a server with that profile starts) and the default profile of usage records.
        titan.yaml spawner.profiles_dir. Default "": no profile clones.""",
    ).tag(config=True)

    public_links = Bool(False, help="""Allow links anyone can open without logging in (reports only).
        titan.yaml sharing.public_links. Default False: every link needs a login.""").tag(config=True)
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
        (public_ip, behind the admin's own hostname). Default 0: no public dashboards.""").tag(config=True)
    public_dashboard_url = Unicode("", help="""The public dashboards' origin as visitors reach it, for
        example https://dashboards.example.org. Default: http://127.0.0.1:<public_dashboard_port>.""").tag(
        config=True)
    hub_public_url = Unicode("http://127.0.0.1:8000", help="""Where the hub's proxy answers, for the
        public dashboards' origin to forward to. titan.yaml hub.public_url. Default http://127.0.0.1:8000.""").tag(
        config=True)
    guess_window = Float(60.0, help="Seconds over which unknown-link tries are counted. Default 60.").tag(
        config=True)

    aliases = {"f": "TitanService.config_file", "config": "TitanService.config_file",
               "log-level": "Application.log_level"}
    classes = [HubClient, DockerHost, HubWatcher, Autosave, Clones, operations.Operations]

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if self.config_file:  # the file, then the command line over it
            command_line = copy.deepcopy(self.config)
            self.load_config_file(self.config_file)
            self.update_config(command_line)
        logging.getLogger("titan").handlers = self.log.handlers
        logging.getLogger("titan").setLevel(self.log.level)
        state = Path(self.state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        self.db = Database(self.db_url)
        self.hub = HubClient(parent=self)
        self.docker = DockerHost(parent=self)
        self.profiles = ProfileClones(self.profiles_dir)
        self.autosave = Autosave(self.db, self.hub, self.docker.volume_path, write_askpass(state), state_dir=state,
                                 parent=self)
        self.clones = Clones(self.autosave, profiles=self.profiles, profile_of=self.docker.profile_of, parent=self)
        self.usage = UsageRecorder(self.db, dask_source=self.docker.dask_containers,
                                   profile_of=self.docker.profile_of, default_profile=lambda: self.profiles()[0])
        metrics.DASK.source = self.docker.dask_containers
        self.watcher = HubWatcher(self.hub, parent=self)
        self.watcher.watch("Autosave", self.autosave.servers_changed)
        self.watcher.watch("Clones", self.clones.servers_changed)
        self.watcher.watch("Usage", self.usage.servers_changed)
        self.operations = operations.Operations(self.hub, parent=self)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/titan/")
        self.sharing = ShareManager(
            SharingConfig(public_links=self.public_links, frame_ancestors=list(self.frame_ancestors),
                          max_notebook_bytes=int(self.max_notebook_mb * 1024 * 1024),
                          versions_kept=self.versions_kept, dashboard_profile=self.dashboard_profile,
                          public_dashboard_url=self._public_dashboard_url(),
                          static_url=url_path_join(prefix, "static/"), prefix=prefix,
                          hub_base=os.environ.get("JUPYTERHUB_BASE_URL", "/")),
            self.db, ReportStore(state / "reports"), self.hub, self.docker.volume_path)
        self.guess_limiter = GuessLimiter(self.guess_limit, self.guess_window)

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

    async def _expire_links(self) -> None:
        try:
            self.sharing.flush_views()
            ended = await self.sharing.expire_due()
        except Exception:  # the top of a periodic loop: a bug is logged with its traceback, the loop goes on
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
        PeriodicCallback(self._expire_links, min(self.watcher.interval, 5.0) * 1000).start()
        await self.usage.dask_pass()  # the Docker engine's Dask containers: first pass at once
        PeriodicCallback(self.usage.dask_pass, self.watcher.interval * 1000).start()
        await self.watcher.start()  # the hub: first pass at once (autosave, clones, usage), then periodic
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):  # the hub stops its services with SIGTERM
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
        await stopping.wait()
        server.stop()
        self.log.info("Stopping: %d view(s) counted since the last write saved", self.sharing.flush_views())
        self.watcher.stop()
        if self.autosave.enabled:
            try:
                await asyncio.wait_for(self.autosave.final_pass(), self.stop_timeout)
            except TimeoutError:
                self.log.warning("Stopping: final snapshots not done after %.0f s; the next start takes them "
                                 "(nothing is lost: the files stay in the homes)", self.stop_timeout)

    def start(self) -> None:
        asyncio.run(self.serve())


main = TitanService.launch_instance

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
