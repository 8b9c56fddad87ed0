"""Export a notebook to PDF with the system's headless chromium.

nbconvert's own ``webpdf`` exporter drives a browser that playwright downloads, which an
offline image cannot do. This exporter renders the notebook to HTML with nbconvert, with
MathJax served from the local ``jupyter_server_mathjax`` copy, and prints it with
``chromium --headless --print-to-pdf``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from nbconvert.exporters import HTMLExporter
from traitlets import Integer, List, Unicode, default


def _local_mathjax_url() -> str:
    try:
        import jupyter_server_mathjax
    except ImportError:
        return ""
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static" / "MathJax.js"
    return mathjax.as_uri() + "?config=TeX-AMS_CHTML-full" if mathjax.exists() else ""


class ChromiumPDFExporter(HTMLExporter):
    """Notebook to PDF through headless chromium, with no network access needed."""

    export_from_notebook = "PDF (chromium)"

    chromium = Unicode(
        help="The chromium executable. Default: the first of chromium, chromium-browser, "
        "google-chrome on PATH.",
    ).tag(config=True)

    chromium_args = List(
        Unicode(),
        default_value=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                       "--disable-background-networking", "--no-pdf-header-footer",
                       "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000",
                       "--allow-file-access-from-files"],
        help="Arguments given to chromium before --print-to-pdf.",
    ).tag(config=True)

    timeout = Integer(120, help="Seconds to wait for chromium to print the page.").tag(config=True)

    @default("chromium")
    def _default_chromium(self) -> str:
        for name in ("chromium", "chromium-browser", "google-chrome"):
            found = shutil.which(name)
            if found:
                return found
        return ""

    @default("mathjax_url")
    def _default_mathjax_url(self) -> str:
        return _local_mathjax_url()

    @default("template_name")
    def _template_name_default(self) -> str:
        # nbconvert's own webpdf template: the lab template, declared for application/pdf.
        return "webpdf"

    @default("file_extension")
    def _file_extension_default(self) -> str:
        return ".pdf"

    output_mimetype = "application/pdf"

    def from_notebook_node(self, nb: Any, resources: Any = None, **kw: Any) -> tuple[Any, Any]:  # PDF bytes, resources
        html, resources = super().from_notebook_node(nb, resources=resources, **kw)
        if not self.chromium:
            raise RuntimeError("chromiumpdf needs chromium on PATH; none was found")
        with tempfile.TemporaryDirectory(prefix="titan-pdf-") as tmp:
            page = Path(tmp) / "notebook.html"
            pdf = Path(tmp) / "notebook.pdf"
            page.write_text(html, encoding="utf-8")
            env = dict(os.environ, HOME=tmp)
            subprocess.run(
                [self.chromium, *self.chromium_args, f"--user-data-dir={tmp}/profile",
                 f"--print-to-pdf={pdf}", page.as_uri()],
                check=True, timeout=self.timeout, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            data = pdf.read_bytes()
        resources["output_extension"] = ".pdf"
        return data, resources
