"""Usage accounting: server hours by user and profile, Dask core-hours and memory-hours by user.

``models`` holds the tables (in the service's database), ``recorder`` turns what the hub (through
the hub watcher) and the Docker engine (``service.dockerhost``) say runs into start/stop intervals,
``report`` sums them over a date range (``daily`` splits them by UTC day), ``chart`` lays the days
out as bar charts for the usage pages.
"""

from service.usage.models import DaskSession, ServerSession
from service.usage.recorder import DaskContainer, UsageRecorder
from service.usage.report import RangeError, Report, parse_range, usage_report

__all__ = ["DaskContainer", "DaskSession", "RangeError", "Report", "ServerSession", "UsageRecorder", "parse_range",
           "usage_report"]
