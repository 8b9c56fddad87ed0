"""Rendering a notebook to a self-contained, sanitised HTML report (nbconvert).

Every script the page loads comes from the Titan service (MathJax from jupyter-server-mathjax's
files, its settings from a static file); require.js, widgets and mermaid, which nbconvert loads
from CDNs, are left out. Output HTML and Markdown are sanitised by nbconvert (bleach), and the
page is served with ``script-src 'self'`` so nothing inline runs even if something slipped through.
Sanitising uses Titan's ``clean_html`` (below) in place of nbconvert's.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from service.sharing.errors import Invalid

TEMPLATES = Path(__file__).resolve().parent / "nbconvert"
STATIC = Path(__file__).resolve().parent / "static"
SUFFIXES = (".ipynb",)


def lab_static_dir() -> Path:
    """nbconvert's lab template stylesheets (index.css, theme-light.css)."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("nbconvert", "templates"):
        candidate = Path(base) / "lab" / "static"
        if (candidate / "index.css").is_file():
            return candidate
    raise FileNotFoundError("nbconvert's lab template is not installed")


def mathjax_dir() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def clean_relative_path(value: object, suffixes: tuple[str, ...] = SUFFIXES) -> str:
    """A path relative to the home directory, as typed by a user: no absolute path, no ``..``."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("give the notebook's path in your home directory, for example work/report.ipynb")
    text = value.strip()
    if len(text) > 1024 or any(ord(c) < 32 for c in text):
        raise Invalid("the notebook path is too long or has control characters")
    if text.startswith("~/"):
        text = text[2:]
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts:
        raise Invalid("the notebook path must be relative to your home directory, without '..'")
    if path.suffix not in suffixes:
        raise Invalid(f"{text!r} is not a notebook ({' or '.join(suffixes)})")
    return str(path)


def open_in_home(home: Path, relative: str, max_bytes: int) -> bytes:
    """The file's bytes; the resolved path must stay inside the home (a symlink pointing out of it is
    refused), be a regular file, and be at most ``max_bytes``."""
    root = home.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise Invalid(f"{relative!r} points outside your home directory")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise Invalid(f"{relative!r} does not exist in your home directory") from None
    except OSError as error:
        raise Invalid(f"{relative!r} cannot be read: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Invalid(f"{relative!r} is not a file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > max_bytes:
            raise Invalid(f"{relative!r} is {info.st_size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        return handle.read(max_bytes + 1)


ALLOWED_TAGS = frozenset({
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
    "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "summary",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var",
})
_COMMON_ATTRIBUTES = {"class", "id", "title", "align", "style", "dir", "lang"}
_TAG_ATTRIBUTES = {"a": {"href", "name"}, "img": {"src", "alt", "width", "height"},
                   "td": {"colspan", "rowspan", "scope"}, "th": {"colspan", "rowspan", "scope"},
                   "ol": {"start", "type"}, "li": {"value", "type"}, "col": {"span"}, "colgroup": {"span"}}
STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font-weight", "font-style", "font-size", "font-family", "text-align",
    "text-decoration", "vertical-align", "white-space", "width", "height", "max-width", "min-width", "margin",
    "margin-left", "margin-right", "margin-top", "margin-bottom", "padding", "padding-left", "padding-right",
    "padding-top", "padding-bottom", "border", "border-collapse", "border-color", "border-style", "border-width",
    "border-left", "border-right", "border-top", "border-bottom", "display", "line-height",
})


def _attribute_filter(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":  # inline raster images only: no remote fetch (CSP says so too)
        return value if value.startswith("data:image/") and not value.startswith("data:image/svg") else None
    if name == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def clean_html(fragment: object) -> str:
    """Titan's sanitiser for Markdown and HTML outputs, with nh3 (Rust's ammonia): nbconvert's own
    ``clean_html`` keeps so few tags that headings and paragraphs show up as escaped text, and bleach
    takes twice nbconvert's whole render time on big outputs. Scripts (and their text), styles,
    event handlers, iframes, forms, SVG and javascript: URLs are removed; what is left is inert."""
    import nh3

    text = fragment.decode() if isinstance(fragment, bytes) else str(fragment)
    attributes = {"*": set(_COMMON_ATTRIBUTES), **{tag: set(names) for tag, names in _TAG_ATTRIBUTES.items()}}
    return nh3.clean(text, tags=set(ALLOWED_TAGS), attributes=attributes, attribute_filter=_attribute_filter,
                     url_schemes={"http", "https", "mailto", "data"}, strip_comments=True,
                     link_rel="noopener noreferrer", clean_content_tags={"script", "style"},
                     filter_style_properties=set(STYLE_PROPERTIES))


@dataclass(frozen=True)
class Rendered:
    html: bytes
    seconds: float
    sha256: str
    title: str


def render_report(data: bytes, *, name: str, hide_code: bool, static_url: str) -> Rendered:
    """Render notebook bytes to a report page. ``static_url`` is where the service serves its
    static files (``mathjax-config.js``, and MathJax itself under ``mathjax/``)."""
    import nbformat
    from nbconvert import HTMLExporter

    started = time.perf_counter()
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except (UnicodeDecodeError, ValueError, nbformat.reader.NotJSONError) as error:
        raise Invalid(f"{name!r} is not a valid notebook: {str(error)[:200]}") from None
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="titan_report", extra_template_basedirs=[str(TEMPLATES)], sanitize_html=True,
        filters={"clean_html": clean_html},
        exclude_input=hide_code, exclude_input_prompt=hide_code, exclude_output_prompt=hide_code,
        mathjax_url=f"{static_url}mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe",
    )
    title = str(notebook.metadata.get("title") or PurePosixPath(name).stem)
    body, _ = exporter.from_notebook_node(
        notebook, resources={"titan_static": static_url, "metadata": {"name": title}})
    html = body.encode("utf-8")
    return Rendered(html=html, seconds=time.perf_counter() - started, sha256=hashlib.sha256(html).hexdigest(),
                    title=title)


def report_headers(frame_ancestors: list[str]) -> dict[str, str]:
    """Security headers of a report page: scripts only from the service, no inline script, and
    framing only by the origins an admin allows (none by default)."""
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    headers = {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            f"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            f"frame-ancestors {ancestors}"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-cache",
    }
    if not frame_ancestors:
        headers["X-Frame-Options"] = "DENY"
    return headers
