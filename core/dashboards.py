"""The registry of live-dashboard apps: a named server (spawner), a dashboard link (service) and
the image's ``titan-dashboard`` proxy serve one notebook or script with one of these apps.

Which images can run which app is the image catalogue's ``dashboards`` (core.images). The image's
own proxy (``images/datascience/titan_dashboard``) keeps its copy: it is baked into the image.
"""

from __future__ import annotations

from collections.abc import Mapping

#: app → the file suffixes it can serve, in the order offered (the first is the default app).
APP_SUFFIXES: Mapping[str, tuple[str, ...]] = {"voila": (".ipynb",), "panel": (".ipynb", ".py")}
#: app → its name as users read it.
APP_NAMES: Mapping[str, str] = {"voila": "Voila", "panel": "Panel"}
#: The app a dashboard link gets when the request names none.
DEFAULT_APP = next(iter(APP_SUFFIXES))
