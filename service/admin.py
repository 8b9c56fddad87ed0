"""Operations in the Titan service: usage pages and CSV, the admin overview (stop a server or a
Dask cluster), and the Prometheus metrics page.

Who sees what:
- ``usage`` and ``api/users/{name}/usage``: a user's own usage; admins may read anyone's (403 else);
- ``admin``, ``admin/usage``, ``api/admin/overview``: hub admins only (the ``admin`` field of the
  caller's hub model), 403 for everyone else; stopping needs a POST with the XSRF token (browser)
  or a token;
- ``metrics``: a token with ``read:metrics`` (Prometheus: ``state/metrics-token``), or an admin.

Stopping a server goes through the hub's API (the service's role holds ``delete:servers``), so the
spawner's ``stop`` runs: its Dask clusters stop and the final autosave snapshot is taken. Stopping
a cluster goes to the gateway's control route (``gateway.routes``), with the gateway's control token.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jupyterhub.utils import url_path_join
from sqlalchemy import create_engine, select
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.web import HTTPError, RequestHandler
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from core.timeutil import utcnow
from service import metrics
from service.handlers import APIHandler, PageHandler
from service.hub import HubClient, HubError
from service.usage import RangeError, Report, parse_range, usage_report
from service.usage.chart import usage_charts
from service.usage.daily import MAX_DAYS
from service.usage.recorder import DaskContainer, parse_time


class Operations(LoggingConfigurable):
    """What the admin page acts on: the hub (stop a server), the gateway (stop a cluster), the GPU
    allocation table (who holds which GPU)."""

    gateway_url = Unicode(
        "", help="""The Dask gateway's private API (``http://127.0.0.1:<gateway.api_port>``), where the admin
        page stops clusters. Default "": no gateway (clusters are listed, not stopped).""",
    ).tag(config=True)
    gateway_token_file = Unicode(
        "", help="""File holding the gateway's control token (``state/dask-gateway-control-token``, mode 0600);
        read when a cluster is stopped, never logged.""",
    ).tag(config=True)
    gpu_db_url = Unicode(
        help="""The spawner's GPU allocation database (who holds which GPU, servers and Dask workers).
        Default: ``sqlite:///$TITAN_STATE_DIR/gpu-allocations.sqlite`` when that file exists.""",
    ).tag(config=True)

    @default("gpu_db_url")
    def _default_gpu_db_url(self) -> str:
        path = Path(os.environ.get("TITAN_STATE_DIR") or "state") / "gpu-allocations.sqlite"
        return f"sqlite:///{path.resolve()}" if path.exists() else ""

    def __init__(self, hub: HubClient, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hub = hub

    async def stop_server(self, user: str, server: str) -> int:
        """Ask the hub to stop ``user``'s server (``""``: the default one); the hub's status code."""
        status = await self.hub.stop_server(user, server)
        self.log.info("Admin stop of %s/%s: the hub answered %d", user, server or "default", status)
        return status

    async def stop_cluster(self, name: str) -> tuple[int, str]:
        """Ask the gateway to stop cluster ``name``: (status, message)."""
        if not self.gateway_url or not self.gateway_token_file:
            return 503, "no Dask gateway is configured"
        from core.endpoints import STOP_CLUSTER_PATH

        token = (await asyncio.to_thread(Path(self.gateway_token_file).read_text)).strip()
        request = HTTPRequest(self.gateway_url.rstrip("/") + STOP_CLUSTER_PATH, method="POST",
                              body=json.dumps({"cluster": name, "wait": 20}), request_timeout=60,
                              headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as error:
            return 502, f"the Dask gateway is not reachable: {error}"
        body = json.loads(response.body or b"{}") if response.body else {}
        message = body.get("error") or f"cluster {name} of {body.get('user', '?')} stopped"
        self.log.info("Admin stop of cluster %s: the gateway answered %d", name, response.code)
        return int(response.code), str(message)

    def gpu_allocations(self) -> list[dict[str, str]]:
        """Every GPU held now: uuid, type, holder (``user/server`` or ``user/dask/cluster/worker``)."""
        if not self.gpu_db_url:
            return []
        from sqlalchemy import inspect

        from core.gpu.allocator import TABLE_NAME, allocations_table

        engine = create_engine(self.gpu_db_url)
        try:
            if not inspect(engine).has_table(TABLE_NAME):
                return []
            with engine.connect() as conn:
                rows = conn.execute(select(allocations_table.c.uuid, allocations_table.c.gpu_type,
                                           allocations_table.c.owner).order_by(allocations_table.c.owner)).all()
        finally:
            engine.dispose()
        return [{"uuid": uuid, "type": gpu_type, "owner": owner} for uuid, gpu_type, owner in rows]


def clusters_of(containers: list[DaskContainer]) -> list[dict[str, Any]]:
    """The Dask containers grouped into clusters: user, server, workers running, cores, memory, since."""
    clusters: dict[str, dict[str, Any]] = {}
    for container in containers:
        entry = clusters.setdefault(container.cluster, {
            "name": container.cluster, "user": container.user, "server": container.server, "workers": 0,
            "cores": 0.0, "memory": 0, "started": None, "scheduler": False})
        if not container.running:
            continue
        entry["cores"] += container.cores
        entry["memory"] += container.memory
        if container.role == "worker":
            entry["workers"] += 1
        else:
            entry["scheduler"] = True
        if container.started and (entry["started"] is None or container.started < entry["started"]):
            entry["started"] = container.started
    result = sorted(clusters.values(), key=lambda c: (c["user"], c["name"]))
    for entry in result:
        entry["started"] = entry["started"].isoformat() if entry["started"] else None
    return result


# ---- handlers -------------------------------------------------------------------------


class _Operations:
    """Shared by the pages and the API: who the caller is, the date range, the report."""

    current_user: Any
    settings: Any
    get_query_argument: Any

    @property
    def ops_app(self) -> Any:
        return self.settings["titan"]

    @property
    def is_admin(self) -> bool:
        user = self.current_user or {}
        return user.get("kind", "user") == "user" and bool(user.get("admin"))

    def require_admin(self) -> None:
        if not self.is_admin:
            raise HTTPError(403, "only hub admins may see this")

    def now(self) -> datetime:
        return utcnow()

    def report(self, user: str | None) -> Report:
        try:
            start, end = parse_range(self.get_query_argument("start", None) or None,
                                     self.get_query_argument("end", None) or None, self.now())
        except RangeError as error:
            raise HTTPError(400, str(error)) from None
        return usage_report(self.ops_app.db, start, end, self.now(), user=user)

    def send_csv(self, handler: RequestHandler, report: Report, who: str) -> None:
        name = f"titan-usage-{who}-{report.start.date().isoformat()}-{report.end.date().isoformat()}.csv"
        handler.set_header("Content-Type", "text/csv; charset=utf-8")
        handler.set_header("Content-Disposition", f'attachment; filename="{name}"')
        handler.finish(report.csv())


class _OpsPage(_Operations, PageHandler):
    def render_ops(self, template: str, **context: Any) -> None:
        self.render_page(template, is_admin=self.is_admin, **context)

    def range_context(self, report: Report) -> dict[str, Any]:
        end_day = (report.end - _ONE_MICROSECOND).date()
        query = {"start": report.start.date().isoformat(), "end": end_day.isoformat()}
        return {"report": report, "start": query["start"], "end": query["end"],
                "csv_query": urlencode({**query, "format": "csv"}), "charts": usage_charts(report),
                "max_days": MAX_DAYS}


class UsagePage(_OpsPage):
    """The caller's own usage (HTML, or CSV with ``format=csv``)."""

    def get(self) -> None:
        report = self.report(self.user_name)
        if self.get_query_argument("format", "") == "csv":
            self.send_csv(self, report, self.user_name)
            return
        self.render_ops("usage.html", **self.range_context(report))


class AdminUsagePage(_OpsPage):
    """Everyone's usage, for admins (HTML, or CSV with ``format=csv``)."""

    def get(self) -> None:
        self.require_admin()
        report = self.report(None)
        if self.get_query_argument("format", "") == "csv":
            self.send_csv(self, report, "all")
            return
        self.render_ops("admin_usage.html", **self.range_context(report))


class UsageAPIHandler(_Operations, APIHandler):
    """``GET api/users/{name}/usage?start=&end=[&format=csv]``: one's own, or anyone's for an admin."""

    def get(self, name: str) -> None:
        user = self.current_user or {}
        if not self.is_admin and (user.get("kind", "user") != "user" or name != self.user_name):
            raise HTTPError(403, "you may only see your own usage")
        report = self.report(name)
        if self.get_query_argument("format", "") == "csv":
            self.send_csv(self, report, name)
            return
        self.finish({"user": name, **report.as_json()})


async def overview(app: Any) -> dict[str, Any]:
    """Who runs what now: servers (profile, since, activity, GPUs), GPUs by holder, Dask clusters."""
    try:
        active = await app.hub.active_servers()
    except HubError as error:
        raise HTTPError(502, f"the hub did not list its servers: {error}") from None
    gpus = await asyncio.to_thread(app.operations.gpu_allocations)
    containers = await asyncio.to_thread(app.docker.dask_containers)
    by_owner: dict[str, list[dict[str, str]]] = {}
    for gpu in gpus:
        by_owner.setdefault(gpu["owner"], []).append(gpu)
    servers = []
    for user in sorted(active):
        for name, model in sorted(active[user].items()):
            profile = str((model.get("user_options") or {}).get("profile") or "")
            if not profile and app.usage.profile_of is not None:
                profile = await asyncio.to_thread(app.usage.profile_of, user, name) or ""
            started = parse_time(model.get("started"))
            servers.append({
                "user": user, "server": name, "profile": profile or app.usage.default_profile(),
                "ready": bool(model.get("ready")), "pending": model.get("pending"),
                "started": started.isoformat() if started else None, "last_activity": model.get("last_activity"),
                "gpus": [g["uuid"] for g in by_owner.get(f"{user}/{name}", [])]})
    return {"servers": servers, "gpus": gpus, "clusters": clusters_of(containers)}


class AdminPage(_OpsPage):
    async def get(self) -> None:
        self.require_admin()
        model = await overview(self.ops_app)
        self.render_ops("admin.html", model=model, message=self.get_query_argument("message", ""))


class AdminOverviewAPI(_Operations, APIHandler):
    async def get(self) -> None:
        self.require_admin()
        self.finish(await overview(self.ops_app))


class AdminStopServer(_OpsPage):
    """POST ``user``, ``server`` (form or JSON): stop that server through the hub."""

    async def post(self) -> None:
        self.require_admin()
        user, server = self.get_body_argument("user", ""), self.get_body_argument("server", "")
        if not user:
            raise HTTPError(400, "give the user whose server to stop")
        status = await self.ops_app.operations.stop_server(user, server)
        if status not in (202, 204):
            raise HTTPError(502 if status >= 500 else 400, f"the hub answered {status} to stopping {user}/{server}")
        self.redirect(url_path_join(self.settings["prefix"], "admin") + "?" + urlencode(
            {"message": f"Stopping {user}/{server or 'default'}: its Dask clusters stop with it."}))


class AdminStopCluster(_OpsPage):
    """POST ``cluster``: stop that Dask cluster through the gateway."""

    async def post(self) -> None:
        self.require_admin()
        name = self.get_body_argument("cluster", "")
        if not name:
            raise HTTPError(400, "give the cluster to stop")
        status, message = await self.ops_app.operations.stop_cluster(name)
        if status != 200:
            raise HTTPError(404 if status == 404 else 502, message)
        self.redirect(url_path_join(self.settings["prefix"], "admin") + "?" + urlencode({"message": message}))


class MetricsHandler(_Operations, APIHandler):
    """Prometheus text format; a token with ``read:metrics``, or an admin."""

    async def get(self) -> None:
        user = self.current_user or {}
        if "read:metrics" not in (user.get("scopes") or []) and not self.is_admin:
            raise HTTPError(403, "reading metrics needs the read:metrics scope")
        body = await asyncio.to_thread(metrics.exposition)
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(body)


NAME = r"([^/]+)"
ROUTES: list[tuple[str, type[RequestHandler]]] = [
    (r"usage/?", UsagePage),
    (rf"api/users/{NAME}/usage", UsageAPIHandler),
    (r"admin/?", AdminPage),
    (r"admin/usage/?", AdminUsagePage),
    (r"admin/servers/stop", AdminStopServer),
    (r"admin/clusters/stop", AdminStopCluster),
    (r"api/admin/overview", AdminOverviewAPI),
    (r"metrics", MetricsHandler),
]


def routes(prefix: str) -> list[tuple[str, type[RequestHandler]]]:
    return [(url_path_join(prefix, pattern), handler) for pattern, handler in ROUTES]


_ONE_MICROSECOND = timedelta(microseconds=1)
