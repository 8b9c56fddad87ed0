"""Make Voila's page templates work offline: Font Awesome from Voila's own static files, not its CDN.

Run at image build time with the image's Python: ``offline_voila.py <voila share dir> <fontawesome dir>``.
Copies Font Awesome's CSS and web fonts (from the ``fontawesomefree`` wheel) under the ``base``
template's static folder, which every Voila template inherits and Voila serves at
``<base_url>voila/templates/<template>/static/``, rewrites each CDN link to it, and fails when a
template still names an outside host.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

CDN_LINK = re.compile(
    r'<link rel="stylesheet" href="https://cdn\.jsdelivr\.net/npm/[^"]*(?:font-?awesome)[^"]*"[^>]*/>\s*', re.I)
OUTSIDE = re.compile(r"https?://(?:cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com)", re.I)


def local_links(template: str, base_url: str) -> str:
    static = f"{{{{ {base_url} }}}}voila/templates/{template}/static/fontawesome/css"
    return (f'<link rel="stylesheet" href="{static}/all.min.css" type="text/css" />\n'
            f'  <link rel="stylesheet" href="{static}/v4-shims.min.css" type="text/css" />\n  ')


def main(share: Path, fontawesome: Path) -> int:
    templates = share / "templates"
    target = templates / "base" / "static" / "fontawesome"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in ("css", "webfonts"):
        shutil.copytree(fontawesome / part, target / part)
    for page in sorted(templates.glob("*/*.html*")):
        template = page.parent.name
        base_url = "resources.base_url" if page.name.startswith("index") else "base_url"
        text = page.read_text()
        links = local_links(template, base_url)
        rewritten, count = CDN_LINK.subn(links.replace("\\", "\\\\"), text, count=1)  # a literal replacement
        rewritten = CDN_LINK.sub("", rewritten)  # the second link of a pair: the shims are in already
        if count:
            page.write_text(rewritten)
            print(f"offline_voila: {page.relative_to(share)}: Font Awesome from Voila's static files")
    left = [str(p) for p in templates.rglob("*.html*") if OUTSIDE.search(p.read_text())]
    if left:
        print("offline_voila: templates still naming an outside host: " + ", ".join(left), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
