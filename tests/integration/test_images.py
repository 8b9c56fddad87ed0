"""The single-user images: built here with no registry, lean, and exporting notebooks offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.images import hub_version, image_tag

pytestmark = pytest.mark.docker

MAKE_NOTEBOOK = """
import nbformat
nb = nbformat.v4.new_notebook()
nb.cells = [
    nbformat.v4.new_markdown_cell("# Titan export check"),
    nbformat.v4.new_code_cell("print(6 * 7)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="forty-two 42\\n")]),
]
nbformat.write(nb, "/tmp/work/check.ipynb")
"""


def run_offline(tag: str, script: str, timeout: int = 180) -> subprocess.CompletedProcess[bytes]:
    """Run a shell script in the image with no network at all."""
    return subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "bash", "-c", script],
                          capture_output=True, timeout=timeout, check=False)


def notebook_then(command: str) -> str:
    return f"set -e; mkdir -p /tmp/work; python - <<'EOF'\n{MAKE_NOTEBOOK}\nEOF\ncd /tmp/work; {command}"


@pytest.mark.parametrize("name", ["minimal", "datascience"])
def test_html_export_works_offline(built_images: dict[str, str], name: str) -> None:
    result = run_offline(built_images[name],
                         notebook_then("jupyter nbconvert --to html check.ipynb >&2; cat check.html"))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    html = result.stdout.decode()
    assert "<html" in html and "Titan export check" in html and "forty-two 42" in html


def test_pdf_export_from_datascience_works_offline(built_images: dict[str, str], tmp_path: Path) -> None:
    result = run_offline(built_images["datascience"],
                         notebook_then("jupyter nbconvert --to chromiumpdf check.ipynb >&2; cat check.pdf"))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    pdf = result.stdout
    assert pdf.startswith(b"%PDF-")
    assert pdf.count(b"/Type /Page") >= 1
    (tmp_path / "check.pdf").write_bytes(pdf)
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext (poppler-utils) is installed by make test"
    text = subprocess.run([pdftotext, str(tmp_path / "check.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Titan export check" in text and "forty-two 42" in text


def test_minimal_has_the_hubs_singleuser_git_and_dask(built_images: dict[str, str]) -> None:
    script = ("jupyterhub --version; git --version; python -c 'import dask, distributed, dask_gateway, jupyterlab; "
              "print(\"imports-ok\")'; id -u; echo $HOME")
    result = run_offline(built_images["minimal"], script)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().split()
    assert lines[0] == hub_version()
    assert "imports-ok" in lines and "1000" in lines and "/home/jovyan" in lines


def test_datascience_has_the_pydata_stack(built_images: dict[str, str]) -> None:
    result = run_offline(built_images["datascience"],
                         "python -c 'import pandas, numpy, pyarrow, sklearn, matplotlib, voila, panel; print(\"ok\")'")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "ok"


@pytest.mark.parametrize("name", ["minimal", "datascience"])
def test_images_are_lean(built_images: dict[str, str], name: str) -> None:
    script = ("for p in /usr/bin/gcc /usr/bin/cc /root/.cache/pip /tmp/titan-ca.pem; do\n"
              "  [ -e $p ] && echo found:$p; done;"
              " ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' | head -3 | sed 's/^/found:/'; true")
    result = subprocess.run(["docker", "run", "--rm", "--network", "none", "-u", "root", built_images[name],
                             "bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "found:" not in result.stdout, result.stdout


def test_a_second_build_rebuilds_nothing(built_images: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "images.build"], capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "building" not in result.stdout
    for name in ("base", "minimal", "datascience"):
        assert f"{name}: {image_tag(name)} is up to date" in result.stdout
