"""Prometheus scraping: a ``titan-metrics`` service whose token (``state/metrics-token``, mode 0600)
reads the hub's ``/hub/metrics`` (JupyterHub's metrics and the spawner's, ``spawner.metrics``) and the
Titan service's ``/services/titan/metrics`` (``service.metrics``), and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.state import secret_file

SERVICE_NAME = "titan-metrics"
ROLE_NAME = "titan-metrics"


def scopes(titan_service: str | None) -> list[str]:
    """``read:metrics``, plus access to the Titan service (to reach its metrics page) when it runs."""
    return ["read:metrics", *([f"access:services!service={titan_service}"] if titan_service else [])]


def service(state: Path) -> dict[str, Any]:
    """A token-only service (no process): Prometheus uses its token, ``state/metrics-token``."""
    return {"name": SERVICE_NAME, "api_token": secret_file(state / "metrics-token"), "display": False}


def role(titan_service: str | None) -> dict[str, Any]:
    return {"name": ROLE_NAME, "description": "Prometheus: read the hub's and the Titan service's metrics.",
            "scopes": scopes(titan_service), "services": [SERVICE_NAME]}
