"""Share links' pure parts: access parsing and decisions, expiry, paths, the sanitiser, the
guess limiter and the report store."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.sharing.access import Access, Viewer, listed_for, may_view, parse_access, parse_expiry
from service.sharing.dashboards import dashboard_server_name
from service.sharing.errors import Invalid
from service.sharing.ratelimit import GuessLimiter
from service.sharing.render import clean_html, clean_relative_path, open_in_home, report_headers
from service.sharing.storage import ReportStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_access_defaults_to_named_users_only() -> None:
    assert parse_access(None, public_allowed=False) == Access("users", (), ())
    access = parse_access({"mode": "users", "users": ["bob", "bob", " ada "], "groups": ["org:team"]}, False)
    assert access == Access("users", ("bob", "ada"), ("org:team",))


@pytest.mark.parametrize(("value", "message"), [
    ("team", "must be an object"),
    ({"mode": "everyone"}, "must be one of"),
    ({"mode": "public"}, "public links are turned off"),
    ({"users": "bob"}, "must be a list"),
    ({"users": ["<b>"]}, "not a valid name"),
    ({"users": ["x"] * 201}, "at most 200"),
    ({"who": []}, "unknown keys"),
])
def test_bad_access_is_refused_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse_access(value, public_allowed=False)


def test_who_may_view() -> None:
    named = Access("users", ("bob",), ("org:analysts",))
    assert may_view("alice", named, Viewer("alice"), False)  # the owner
    assert may_view("alice", named, Viewer("bob"), False)
    assert may_view("alice", named, Viewer("carol", frozenset({"org:analysts"})), False)
    assert not may_view("alice", named, Viewer("carol", frozenset({"org:other"})), False)
    assert not may_view("alice", named, Viewer(None), False)
    team = Access("team")
    assert may_view("alice", team, Viewer("dave"), False) and not may_view("alice", team, Viewer(None), False)
    public = Access("public")
    assert may_view("alice", public, Viewer(None), True)
    # public links turned off later by the admin: logged-in users only
    assert not may_view("alice", public, Viewer(None), False) and may_view("alice", public, Viewer("dave"), False)
    assert listed_for(Viewer("bob"), "alice", named) and not listed_for(Viewer("alice"), "alice", named)
    assert not listed_for(Viewer("eve"), "alice", named)


def test_expiry_forms() -> None:
    assert parse_expiry(None, NOW) is None and parse_expiry("", NOW) is None
    assert parse_expiry({"in_seconds": 90}, NOW) == NOW + timedelta(seconds=90)
    assert parse_expiry("2026-11-29T00:00:00+01:00", NOW) == datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    for bad, message in (("2026-11-28T11:00:00Z", "in the past"), ("2026-12-01T00:00", "time zone"),
                         ({"in_seconds": 0}, "positive"), ({"in_seconds": True}, "positive"),
                         ({"in_seconds": 10**12}, "ten years"), ("tomorrow", "ISO 8601"), (5, "ISO 8601")):
        with pytest.raises(Invalid, match=message):
            parse_expiry(bad, NOW)


@pytest.mark.parametrize("path", ["../x.ipynb", "/etc/x.ipynb", "a/../../x.ipynb", "x.py", "", "a\x00.ipynb", 3])
def test_bad_notebook_paths(path: object) -> None:
    with pytest.raises(Invalid):
        clean_relative_path(path)


def test_good_notebook_paths() -> None:
    assert clean_relative_path("~/work/a.ipynb") == "work/a.ipynb"
    assert clean_relative_path("app.py", (".ipynb", ".py")) == "app.py"


def test_a_symlink_out_of_the_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "secret.ipynb"
    secret.write_text("{}")
    os.symlink(secret, home / "link.ipynb")
    (home / "ok.ipynb").write_text("{}")
    with pytest.raises(Invalid, match="outside your home"):
        open_in_home(home, "link.ipynb", 1000)
    assert open_in_home(home, "ok.ipynb", 1000) == b"{}"
    with pytest.raises(Invalid, match="limit"):
        open_in_home(home, "ok.ipynb", 1)
    (home / "dir.ipynb").mkdir()
    with pytest.raises(Invalid, match="not a file"):
        open_in_home(home, "dir.ipynb", 1000)


@pytest.mark.parametrize("payload", [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:alert(1)'>x</a>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>", "<svg onload=alert(1)></svg>",
    "<form action=/x><input name=a></form>", "<object data=x></object>", "<style>*{}</style>",
    "<img src='data:image/svg+xml;base64,PHN2Zz4='>", "<math><mi xlink:href='javascript:alert(1)'>x</mi></math>",
    "<div style='background:url(javascript:alert(1))'>x</div>", "<body onload=alert(1)>",
])
def test_the_sanitiser_leaves_nothing_that_runs(payload: str) -> None:
    cleaned = clean_html(payload).lower()
    for marker in ("<script", "onerror", "onload", "javascript:", "<iframe", "<svg", "<form", "<object", "<style",
                   "data:image/svg", "<math", "url("):
        assert marker not in cleaned, (payload, cleaned)


def test_the_sanitiser_keeps_ordinary_markup() -> None:
    html = ('<h2 id="t">Title</h2><p>Text <b>bold</b> <a href="https://example.org">link</a></p>'
            '<table><tr><th colspan="2">h</th></tr></table><img src="data:image/png;base64,AAAA" alt="plot">'
            '<span style="color: red; position: fixed">c</span>')
    cleaned = clean_html(html)
    for kept in ('<h2 id="t">', "<p>", "<b>bold</b>", 'href="https://example.org"', 'colspan="2"',
                 'src="data:image/png;base64,AAAA"', 'style="color:red"'):
        assert kept in cleaned, (kept, cleaned)


def test_report_headers_forbid_framing_unless_an_origin_is_allowed() -> None:
    closed = report_headers([])
    assert "frame-ancestors 'none'" in closed["Content-Security-Policy"] and closed["X-Frame-Options"] == "DENY"
    assert "script-src 'self';" in closed["Content-Security-Policy"]
    opened = report_headers(["https://intranet.example.org"])
    assert "frame-ancestors https://intranet.example.org" in opened["Content-Security-Policy"]
    assert "X-Frame-Options" not in opened


def test_the_guess_limiter_blocks_then_forgets() -> None:
    now = [100.0]
    limiter = GuessLimiter(limit=3, window=10, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("ip:1") == 0
        limiter.miss("ip:1")
    assert limiter.retry_after("ip:1") == 11 and limiter.retry_after("ip:2") == 0
    now[0] += 10.5
    assert limiter.retry_after("ip:1") == 0


def test_the_store_keeps_versions_and_refuses_odd_ids(tmp_path: Path) -> None:
    store = ReportStore(tmp_path, cache_entries=1)
    link = "A" * 32
    store.write(link, 1, b"one")
    store.write(link, 2, b"two")
    assert store.read(link, 1) == b"one" and store.read(link, 2) == b"two"
    store.delete_versions(link, [1])
    assert store.read(link, 1) is None and sorted(p.name for p in (tmp_path / link).iterdir()) == ["2.html"]
    with pytest.raises(ValueError, match="bad link id"):
        store.write("../../etc", 1, b"x")


def test_dashboard_server_names_do_not_reveal_the_link() -> None:
    name = dashboard_server_name("secret-link-id-1234567890")
    assert name.startswith("dash-") and "secret" not in name and len(name) == 15
