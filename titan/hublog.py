"""The hub's log: a user's refused request is not an error of the hub's."""

from __future__ import annotations

import logging

HUB_LOGGER = "JupyterHub"


class RefusalsAsWarnings(logging.Filter):
    """JupyterHub logs every failed start at ERROR, even a spawner's HTTP 4xx refusal of options a
    user sent ("Error starting alice's server: HTTP 400: ..."). Those are the user's mistakes,
    answered with the reason: they are logged at WARNING (the spawner logged the reason at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and isinstance(record.msg, str) \
                and record.msg.startswith("Error starting ") and ": HTTP 4" in record.getMessage():
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: Merged by traitlets into the hub's logging configuration: the filter on its console handler.
LOGGING_CONFIG = {
    "filters": {"titan_refusals": {"()": "titan.hublog.RefusalsAsWarnings"}},
    "handlers": {"console": {"filters": ["titan_refusals"]}},
}
