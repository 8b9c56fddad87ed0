"""``python -m kubernetes_export --out DIR``: Titan's deployment as Zero to JupyterHub and Dask Gateway values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubernetes_export.errors import ExportError
from kubernetes_export.export import export
from kubernetes_export.options import CHART_VERSION, GATEWAY_CHART_VERSION, ExportOptions
from kubernetes_export.source import load_deployment


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kubernetes_export", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder to write into (created; files replaced)")
    p.add_argument("--settings", type=Path, help="titan.yaml (default: TITAN_SETTINGS, else titan.yaml at the root)")
    p.add_argument("--profiles", type=Path, help="profiles folder (default: spawner.profiles_dir of titan.yaml)")
    p.add_argument("--include-secrets", action="store_true",
                   help="write the GitHub client id and secret into values.yaml (default: placeholders)")
    p.add_argument("--chart-version", default=CHART_VERSION,
                   help=f"Zero to JupyterHub chart version for the install commands (default {CHART_VERSION}, "
                        "the one the values are checked against)")
    p.add_argument("--gateway-chart-version", default=GATEWAY_CHART_VERSION,
                   help=f"Dask Gateway chart version (default {GATEWAY_CHART_VERSION})")
    p.add_argument("--registry", default=ExportOptions.registry,
                   help=f"image registry the cluster pulls from (default {ExportOptions.registry})")
    p.add_argument("--namespace", default=ExportOptions.namespace, help="Kubernetes namespace of both releases")
    p.add_argument("--titan-service-url", default=ExportOptions.titan_service_url,
                   help="where the cluster reaches the Titan service on the old host")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = ExportOptions(registry=args.registry, include_secrets=args.include_secrets,
                            chart_version=args.chart_version, gateway_chart_version=args.gateway_chart_version,
                            namespace=args.namespace, titan_service_url=args.titan_service_url)
    try:
        deployment = load_deployment(args.settings, args.profiles)
        written = export(deployment, options, args.out)
    except ExportError as error:
        print(f"kubernetes_export: {error}\nNothing was written.", file=sys.stderr)
        return 1
    print(f"Wrote {', '.join(written)} to {args.out}; read {args.out / 'REPORT.md'} next.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
