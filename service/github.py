"""What the service asks GitHub itself: the account behind a user's token (for the commit author)."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


def github_api_url(github_url: str) -> str:
    """github.com's API is on api.github.com; GitHub Enterprise's under /api/v3."""
    base = github_url.rstrip("/")
    return "https://api.github.com" if base in ("https://github.com", "http://github.com") else base + "/api/v3"


async def github_user(github_url: str, token: str) -> tuple[int, dict[str, Any]]:
    """``GET /user`` with the token: (HTTP status, body). 401 means the token no longer works."""
    request = HTTPRequest(f"{github_api_url(github_url)}/user", request_timeout=30,
                          headers={"Authorization": f"token {token}", "Accept": "application/vnd.github+json",
                                   "User-Agent": "titan-autosave"})
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as error:
        return error.code, {}
    except OSError:  # unreachable: the push reports the network error
        return 0, {}
    body: dict[str, Any] = json.loads(response.body)
    return response.code, body
