"""Share-link benchmark: render time of a notebook with 5 MB of outputs, and a published report's
throughput and latency through the real proxy under a bounded loopback load.

Baselines, measured in the same run on the same machine:
- **render**: stock ``nbconvert`` (``HTMLExporter``, lab template, no sanitising) on the same
  notebook, against Titan's ``render_report`` (sanitised, scripts from the service, CSS as files).
- **serve**: the hub's own version endpoint ``/hub/api`` (a few bytes of JSON from tornado) through
  the same configurable-http-proxy, against the public report page at ``/services/titan/r/<id>``;
  and the report straight from the service (no proxy), to show what the proxy costs.

Load: ``wrk`` (Debian package; installed by ``scripts/titan.sh bench`` when missing) with a few
connections for a few seconds each, on 127.0.0.1 only. Target: ≥ 1,000 requests/s for the report.

    python -m bench.sharing [--seconds 10] [--connections 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.integration.hub import Hub, remove_deployment, start_hub, stop_hub

RESULTS = Path(__file__).resolve().parent / "results"


def big_notebook(megabytes: float = 5.0) -> str:
    """A notebook with ~``megabytes`` of outputs: text tables, HTML tables and PNG images."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Benchmark report\n\nArea: $\\pi r^2$."))
    png = base64.b64encode(os.urandom(60_000)).decode()  # incompressible, like a real plot
    row = "<tr>" + "".join(f"<td>{i * 1.5:.2f}</td>" for i in range(20)) + "</tr>"
    size, index = 0, 0
    while size < megabytes * 1_000_000:
        text = "\n".join(f"{index:06d} " + " ".join(f"{j * 0.37:9.3f}" for j in range(10)) for _ in range(200))
        html = f"<table>{row * 100}</table>"
        outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=text),
            nbformat.v4.new_output("display_data", data={"text/html": html}),
            nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        ]
        nb.cells.append(nbformat.v4.new_code_cell(f"plot({index})", outputs=outputs, execution_count=index + 1))
        size += len(text) + len(html) + len(png)
        index += 1
    return nbformat.writes(nb)


def bench_render(data: str, repeat: int) -> dict[str, Any]:
    from nbconvert import HTMLExporter

    from service.sharing.render import render_report

    stock, titan = [], []
    for _ in range(repeat):  # alternate, so drift hits both sides
        started = time.perf_counter()
        import nbformat

        HTMLExporter(template_name="lab").from_notebook_node(nbformat.reads(data, as_version=4))
        stock.append(time.perf_counter() - started)
        rendered = render_report(data.encode(), name="bench.ipynb", hide_code=False, static_url="/s/")
        titan.append(rendered.seconds)
    return {"notebook_mb": round(len(data) / 1e6, 2), "page_mb": round(len(rendered.html) / 1e6, 2),
            "stock_nbconvert_s": round(statistics.median(stock), 3), "titan_s": round(statistics.median(titan), 3),
            "ratio": round(statistics.median(titan) / statistics.median(stock), 2)}


def wrk(url: str, seconds: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: _ms(re.search(rf"^\s+{p}%\s+([\d.]+\w+)", out, re.M).group(1))  # type: ignore[union-attr]
               for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": round(rps), "p50_ms": latency["50"], "p99_ms": latency["99"],
            "non_2xx": int(errors.group(1)) if errors else 0}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return round(float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)


def publish_public_report(hub: Hub, notebook: str) -> str:
    hub.admin.create_user("bencher")
    volume = f"{hub.deployment}-home-bencher"
    subprocess.run(["docker", "volume", "create", volume], capture_output=True, check=True)
    mount = json.loads(subprocess.run(["docker", "volume", "inspect", volume], capture_output=True, text=True,
                                      check=True).stdout)[0]["Mountpoint"]
    (Path(mount) / "report.ipynb").write_text(notebook)
    token = hub.admin.user_token("bencher")
    response = requests.post(f"{hub.url}/services/titan/api/links", timeout=300,
                             headers={"Authorization": f"token {token}"},
                             json={"path": "report.ipynb", "access": {"mode": "public"}})
    response.raise_for_status()
    return f"{hub.url}{response.json()['url']}"


def bench_serve(seconds: int, connections: int, repeat: int) -> dict[str, Any]:
    import nbformat

    small = nbformat.v4.new_notebook()
    small.cells = [nbformat.v4.new_markdown_cell("# Weekly numbers"),
                   nbformat.v4.new_code_cell("df.describe()", outputs=[nbformat.v4.new_output(
                       "execute_result", data={"text/html": "<table>" + "<tr><td>1.0</td></tr>" * 40 + "</table>"},
                       execution_count=1)], execution_count=1)]
    root = Path(tempfile.mkdtemp(prefix="titan-bench-sharing-"))
    hub = start_hub(root, {"sharing": {"public_links": True}})
    try:
        report = publish_public_report(hub, nbformat.writes(small))
        static = f"{hub.url}/hub/api"
        port = yaml.safe_load((root / "titan.yaml").read_text())["autosave"]["port"]
        direct = report.replace(hub.url, f"http://127.0.0.1:{port}")
        sizes = {"report_bytes": len(requests.get(report, timeout=30).content),
                 "baseline_bytes": len(requests.get(static, timeout=30).content)}
        runs: dict[str, list[dict[str, Any]]] = {"report": [], "baseline": [], "report_without_proxy": []}
        for _ in range(repeat):
            runs["baseline"].append(wrk(static, seconds, connections))
            runs["report"].append(wrk(report, seconds, connections))
            runs["report_without_proxy"].append(wrk(direct, seconds, connections))
        result: dict[str, Any] = {"seconds": seconds, "connections": connections, **sizes}
        for side, values in runs.items():
            result[side] = {key: statistics.median(v[key] for v in values) for key in values[0]}
        result["throughput_ratio"] = round(result["report"]["requests_per_s"] / result["baseline"]["requests_per_s"],
                                           2)
        result["target_met"] = result["report"]["requests_per_s"] >= 1000 and result["report"]["non_2xx"] == 0
        return result
    finally:
        stop_hub(hub)
        remove_deployment(hub.deployment)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternating (default 3)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: run `scripts/titan.sh bench sharing`, or apt-get install wrk", file=sys.stderr)
        return 2
    result = {"render": bench_render(big_notebook(), args.repeat),
              "serve": bench_serve(args.seconds, args.connections, args.repeat)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sharing.json").write_text(json.dumps(result, indent=2))
    render, serve = result["render"], result["serve"]
    print(f"render {render['notebook_mb']} MB notebook: Titan {render['titan_s']} s vs stock nbconvert "
          f"{render['stock_nbconvert_s']} s -> ratio {render['ratio']} (page {render['page_mb']} MB)")
    print(f"serve public report ({serve['report_bytes']} B) through the proxy: {serve['report']['requests_per_s']} "
          f"req/s, p50 {serve['report']['p50_ms']} ms, p99 {serve['report']['p99_ms']} ms (without the proxy "
          f"{serve['report_without_proxy']['requests_per_s']} req/s); hub /hub/api through the same proxy "
          f"({serve['baseline_bytes']} B) {serve['baseline']['requests_per_s']} req/s -> ratio "
          f"{serve['throughput_ratio']}; target >= 1000 req/s {'met' if serve['target_met'] else 'NOT met'}")
    return 0 if serve["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
