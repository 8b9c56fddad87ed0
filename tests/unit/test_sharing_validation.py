"""Share-link request bodies against the published schemas, and sharing's one error mapping."""

from __future__ import annotations

from typing import Any

import pytest

from service.sharing.errors import (
    Forbidden,
    Gone,
    HubUnavailable,
    Invalid,
    NotFound,
    RateLimited,
    http_error,
)
from service.sharing.handlers import form_request
from service.sharing.openapi import PUBLISH, UPDATE
from service.sharing.validation import validate

GOOD = {"path": "work/report.ipynb"}


@pytest.mark.parametrize(("body", "message"), [
    ([], "the request body must be a JSON object"),
    ("report", "the request body must be a JSON object"),
    ({}, "path is required"),
    ({"path": 7}, "path must be text"),
    ({**GOOD, "colour": "red", "size": 3}, "unknown fields: colour, size"),
    ({**GOOD, "kind": "pdf"}, "kind must be one of report, dashboard"),
    ({**GOOD, "hide_code": "yes"}, "hide_code must be true or false"),
    ({**GOOD, "title": "x" * 201}, "title may be at most 200 characters"),
    ({**GOOD, "app": "jupyterlab"}, "app must be one of voila, panel"),
    ({**GOOD, "profile": ["small"]}, "profile must be text"),
    ({**GOOD, "access": "team"}, "access must be an object"),
    ({**GOOD, "access": {"who": []}}, "access has unknown keys: who"),
    ({**GOOD, "access": {"mode": "everyone"}}, "access.mode must be one of users, team, public"),
    ({**GOOD, "access": {"users": "bob"}}, "access.users must be a list"),
    ({**GOOD, "access": {"users": ["bob", 3]}}, "access.users[1] must be text"),
    ({**GOOD, "access": {"groups": ["g"] * 201}}, "access.groups may name at most 200"),
    ({**GOOD, "expires_at": 5}, "expires_at must be one of: null: never; an ISO 8601 time"),
    ({**GOOD, "expires_at": {"in_seconds": -1}}, "expires_at.in_seconds must be more than 0"),
    ({**GOOD, "expires_at": {"in_seconds": "60"}}, "expires_at.in_seconds must be a number"),
    ({**GOOD, "expires_at": {"in_hours": 1}}, "expires_at"),
])
def test_a_bad_publish_body_is_invalid_with_a_message_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        validate(body, "LinkPublish")
    assert message in str(caught.value)
    assert http_error(caught.value).status_code == 400


@pytest.mark.parametrize(("body", "message"), [
    ({"path": "work/other.ipynb"}, "unknown fields: path"),
    ({"hide_code": 1}, "hide_code must be true or false"),
    ({"expires_at": []}, "expires_at must be one of"),
    ({"title": None}, "title must be text"),
])
def test_a_bad_update_body_is_invalid(body: Any, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        validate(body, "LinkUpdate")


def test_good_bodies_pass_as_they_are() -> None:
    body = {"kind": "dashboard", "path": "dash.ipynb", "app": "panel", "profile": "small", "image": "datascience",
            "title": "Sales", "hide_code": True, "access": {"mode": "team", "users": [], "groups": ["org:a"]},
            "expires_at": {"in_seconds": 3600}}
    assert validate(body, "LinkPublish") is body
    for expiry in (None, "2030-01-31T18:00:00Z", "not a time: the manager says so", {"in_seconds": 1.5}):
        assert validate({"expires_at": expiry}, "LinkUpdate")["expires_at"] == expiry
    assert validate({}, "LinkUpdate") == {}


def test_the_forms_make_bodies_that_fit_the_schemas() -> None:
    form = {"mode": [b"users"], "users": [b"bob, carol"], "groups": [b""], "expires_in": [b"3600"],
            "kind": [b"dashboard"], "path": [b"dash.ipynb"], "title": [b"Sales"], "app": [b"voila"],
            "hide_code": [b"on"]}
    assert validate(form_request(form, publish=True), "LinkPublish")["access"]["users"] == ["bob", "carol"]
    assert validate(form_request({"expires_at": [b"2030-01-31T18:00Z"]}, publish=False), "LinkUpdate")
    with pytest.raises(Invalid, match="from the list"):
        form_request({"expires_in": [b"soon"]}, publish=False)


def test_the_schemas_the_service_publishes_are_the_ones_checked() -> None:
    from service.openapi import openapi_document

    schemas = openapi_document("/services/titan/")["components"]["schemas"]
    assert schemas["LinkPublish"] is PUBLISH and schemas["LinkUpdate"] is UPDATE


def test_one_mapping_from_sharing_errors_to_http() -> None:
    answers = {type(error).__name__: (http_error(error).status_code, http_error(error).log_message)
               for error in (Invalid("title must be text"), Forbidden("only the owner can see or change this link"),
                             NotFound(), Gone("this link was revoked by its owner"), RateLimited(7),
                             HubUnavailable("the hub did not answer: timeout"))}
    assert answers == {
        "Invalid": (400, "title must be text"),
        "Forbidden": (403, "only the owner can see or change this link"),
        "NotFound": (404, "There is no such link. Check that you copied all of it."),
        "Gone": (410, "this link was revoked by its owner"),
        "RateLimited": (429, "too many unknown links were tried; wait 7 seconds"),
        "HubUnavailable": (502, "the hub did not answer: timeout"),
    }
    assert http_error(RateLimited(7)).headers == {"Retry-After": "7"}
    assert http_error(NotFound()).headers == {}
