"""The share-link part of the service's OpenAPI document."""

from __future__ import annotations

from typing import Any

from core.dashboards import APP_SUFFIXES, DEFAULT_APP

_ERROR = {"$ref": "#/components/schemas/Error"}

ACCESS = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "mode": {"enum": ["users", "team", "public"], "default": "users",
                 "description": "users: the owner, the users and groups named; team: anyone who can log in; "
                                "public: anyone with the link, where an admin enables it (dashboards: on their own "
                                "origin)"},
        "users": {"type": "array", "maxItems": 200, "items": {"type": "string"}},
        "groups": {"type": "array", "maxItems": 200, "items": {"type": "string"}},
    },
}
EXPIRY = {"oneOf": [
    {"type": "null", "description": "null: never"},
    {"type": "string", "format": "date-time", "description": "an ISO 8601 time with a zone, in the future"},
    {"type": "object", "additionalProperties": False, "required": ["in_seconds"],
     "description": "{\"in_seconds\": N}, N seconds from now",
     "properties": {"in_seconds": {"type": "number", "exclusiveMinimum": 0}}},
]}
LINK = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "192 random bits, URL-safe base64"},
        "owner": {"type": "string"}, "kind": {"enum": ["report", "dashboard"]}, "title": {"type": "string"},
        "path": {"type": "string"}, "hide_code": {"type": "boolean"},
        "app": {"type": ["string", "null"]}, "profile": {"type": ["string", "null"]},
        "image": {"type": ["string", "null"]},
        "server": {"type": ["string", "null"], "description": "dashboards: the owner's named server"},
        "access": ACCESS,
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "state": {"enum": ["active", "revoked", "expired"]},
        "created": {"type": "string", "format": "date-time"}, "updated": {"type": "string", "format": "date-time"},
        "views": {"type": "integer"}, "version": {"type": ["integer", "null"]},
        "versions": {"type": "array", "items": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created": {"type": "string"}, "size": {"type": "integer"},
            "render_seconds": {"type": "number"}}}},
        "url": {"type": "string", "description": "where viewers open it (r/<id> or d/<id>)"},
        "public_url": {"type": "string", "description": "public dashboards: the link on their own origin"},
    },
}
PUBLISH = {
    "type": "object", "additionalProperties": False, "required": ["path"],
    "properties": {
        "kind": {"enum": ["report", "dashboard"], "default": "report"},
        "path": {"type": "string", "description": "the notebook, relative to your home directory"},
        "title": {"type": "string", "maxLength": 200},
        "hide_code": {"type": "boolean", "default": False},
        "app": {"enum": list(APP_SUFFIXES), "default": DEFAULT_APP},
        "profile": {"type": "string", "maxLength": 255,
                    "description": "dashboards: the profile the server runs with"},
        "image": {"type": "string", "maxLength": 255,
                  "description": "dashboards: the profile's environment choice (datascience)"},
        "access": ACCESS, "expires_at": EXPIRY,
    },
}
UPDATE = {
    "type": "object", "additionalProperties": False,
    "properties": {"access": ACCESS, "expires_at": EXPIRY, "title": {"type": "string", "maxLength": 200},
                   "hide_code": {"type": "boolean"}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _answers(ok: str, schema: dict[str, Any], *errors: str) -> dict[str, Any]:
    texts = {"400": "Invalid input (the message says what)", "403": "Not signed in, or not your link",
             "404": "No such link", "429": "Too many unknown links tried; see Retry-After",
             "502": "The hub refused a dashboard action"}
    answers = {ok: {"description": "OK", **_json(schema)}}
    answers.update({code: {"description": texts[code], **_json(_ERROR)} for code in errors})
    return answers


def link_schemas() -> dict[str, Any]:
    return {"Link": LINK, "LinkPublish": PUBLISH, "LinkUpdate": UPDATE, "Access": ACCESS}


def link_paths() -> dict[str, Any]:
    link = {"$ref": "#/components/schemas/Link"}
    listing = {"type": "object", "properties": {"links": {"type": "array", "items": link}}}
    link_id = {"name": "link_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/links": {
            "get": {"summary": "Your links", "responses": _answers("200", listing, "403")},
            "post": {"summary": "Publish a notebook as a report or a dashboard",
                     "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/LinkPublish"})},
                     "responses": _answers("201", link, "400", "403", "502")},
        },
        "/links/{link_id}": {
            "parameters": [link_id],
            "get": {"summary": "One of your links", "responses": _answers("200", link, "403", "404", "429")},
            "patch": {"summary": "Change access, expiry, title or hide_code",
                      "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/LinkUpdate"})},
                      "responses": _answers("200", link, "400", "403", "404", "429", "502")},
            "delete": {"summary": "Revoke the link (at once; a dashboard's server stops)",
                       "responses": _answers("200", link, "403", "404", "429", "502")},
        },
        "/links/{link_id}/publish": {
            "parameters": [link_id],
            "post": {"summary": "Publish again: re-render a report (same link, old versions kept) or restart a "
                                "dashboard", "responses": _answers("200", link, "400", "403", "404", "429", "502")},
        },
        "/shared": {"get": {"summary": "Links others shared with you, your groups or everyone",
                            "responses": _answers("200", listing, "403")}},
    }
