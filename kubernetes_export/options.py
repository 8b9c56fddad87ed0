"""The export's own choices (the command line), apart from what titan.yaml says."""

from __future__ import annotations

from dataclasses import dataclass

#: The Zero to JupyterHub chart version whose values schema is vendored (vendor/z2jh) and checked.
CHART_VERSION = "4.4.0"
#: The JupyterHub its hub image runs (images/hub/requirements.txt of that chart version).
CHART_HUB_JUPYTERHUB = "5.5.0"
#: The Dask Gateway chart matching Titan's dask-gateway (pyproject: dask-gateway==2026.3.*).
GATEWAY_CHART_VERSION = "2026.3.0"
#: Where servers' GPUs are told apart: a node label the admin applies (REPORT.md says how).
GPU_TYPE_LABEL = "titan/gpu-type"
#: The extended resource NVIDIA's device plugin advertises.
GPU_RESOURCE = "nvidia.com/gpu"
#: What stands for a secret that was not asked for (--include-secrets).
PLACEHOLDER = "<REPLACE: {name}>"


@dataclass(frozen=True)
class ExportOptions:
    """How to export: the registry images go to, secrets or placeholders, chart versions, names."""

    registry: str = "registry.example.org/titan"
    include_secrets: bool = False
    chart_version: str = CHART_VERSION
    gateway_chart_version: str = GATEWAY_CHART_VERSION
    namespace: str = "jupyterhub"
    hub_release: str = "jupyterhub"
    gateway_release: str = "dask-gateway"
    titan_service_url: str = "http://OLD-TITAN-HOST:8020"


def placeholder(name: str) -> str:
    return PLACEHOLDER.format(name=name)
