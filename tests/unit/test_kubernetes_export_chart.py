"""The vendored chart files: pinned, licensed, in step with the constants and the installed packages;
and the chart's schema really checks what kubernetes_export writes."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from kubernetes_export import chart_schema
from kubernetes_export.errors import ExportError
from kubernetes_export.hub_values import KUBESPAWNER_VERSION, OAUTHENTICATOR_VERSION
from kubernetes_export.options import CHART_VERSION, GATEWAY_CHART_VERSION

REFRESH = ("refresh kubernetes_export/vendor/z2jh (values.schema.yaml, values.yaml, LICENSE) from the chart's tag "
           "and set CHART_VERSION, CHART_HUB_JUPYTERHUB and VENDORED_CHART_VERSION together (vendor/README.md)")


def test_vendored_schema_is_the_pinned_chart_version() -> None:
    assert chart_schema.vendored_version() == CHART_VERSION, REFRESH


def test_vendored_files_carry_their_licence() -> None:
    licence = (chart_schema.CHART_DIR / "LICENSE").read_text()
    assert "BSD 3-Clause License" in licence and "Project Jupyter Contributors" in licence
    assert {p.name for p in chart_schema.CHART_DIR.iterdir()} == {"LICENSE", "values.schema.yaml", "values.yaml"}


def test_checked_against_the_versions_the_hub_image_installs() -> None:
    # the export is checked with the installed KubeSpawner; hub.Dockerfile installs the same one
    assert version("jupyterhub-kubespawner") == KUBESPAWNER_VERSION, "bump KUBESPAWNER_VERSION in hub_values.py"
    assert version("oauthenticator") == OAUTHENTICATOR_VERSION, "bump OAUTHENTICATOR_VERSION in hub_values.py"
    assert version("dask-gateway-server") == GATEWAY_CHART_VERSION, "bump GATEWAY_CHART_VERSION in options.py"


def test_the_chart_schema_refuses_a_typo() -> None:
    chart_schema.validate_values({"hub": {"allowNamedServers": True}, "cull": {"timeout": 60}})
    with pytest.raises(ExportError, match=r"values.yaml: at hub: .*'allowNamedServer' was unexpected"):
        chart_schema.validate_values({"hub": {"allowNamedServer": True}})
    with pytest.raises(ExportError, match=r"at cull.timeout: .* is not of type 'integer'"):
        chart_schema.validate_values({"cull": {"timeout": "1h"}})


def test_values_merge_as_helm_merges() -> None:
    merged = chart_schema.helm_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "d": None})
    assert merged == {"a": {"b": 1, "c": [2]}}
