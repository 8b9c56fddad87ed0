"""A GitHub (Enterprise-shaped) protocol peer for tests: OAuth web flow + REST API v3."""

from tests.fakegithub.server import *  # noqa: F403  (the package's API is server.py's __all__)
from tests.fakegithub.server import __all__  # noqa: F401
