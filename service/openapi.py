"""The OpenAPI 3.1 document of the service's JSON API (served at ``<prefix>api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from service.sharing.openapi import link_paths, link_schemas
from service.usage.openapi import usage_paths, usage_schemas

_REPO = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "path": {"type": "string"}, "remote": {"type": "string"},
        "state": {"type": "string", "description": "ok, waiting, not pushed, pushed to a new branch, sign in again, "
                                                   "network error, error"},
        "message": {"type": "string"}, "error": {"type": "string"},
        "branch": {"type": ["string", "null"], "description": "the autosave branch"},
        "push_branch": {"type": ["string", "null"], "description": "the remote branch pushes go to"},
        "last_pass": {"type": ["string", "null"], "format": "date-time"},
        "last_snapshot": {"type": ["string", "null"], "format": "date-time"},
        "last_commit": {"type": ["string", "null"]},
        "last_push": {"type": ["string", "null"], "format": "date-time"},
        "last_pushed_commit": {"type": ["string", "null"]},
        "last_pushed_branch": {"type": ["string", "null"]},
        "left_out": {"type": "array", "items": {"type": "object", "properties": {
            "path": {"type": "string"}, "reason": {"type": "string"}}}},
    },
}
_SETTINGS = {
    "type": "object",
    "properties": {
        "user": {"type": "string"}, "enabled": {"type": "boolean"},
        "interval": {"type": "integer", "description": "seconds between snapshots (default 600)"},
        "repositories": {"type": "array", "items": {"$ref": "#/components/schemas/Repository"}},
        "strip_outputs": {"type": "boolean", "description": "notebooks are committed without outputs"},
        "clone": {"type": "array", "description": "repositories cloned into the home when a server starts "
                  "(source: settings, or profile <slug>), and how the last try went",
                  "items": {"type": "object", "properties": {
                      "url": {"type": "string"}, "path": {"type": "string"}, "source": {"type": "string"},
                      "state": {"type": "string", "description": "waiting, cloned, present, sign in again, error"},
                      "message": {"type": "string"},
                      "last_attempt": {"type": ["string", "null"], "format": "date-time"}}}},
    },
}
_SETTINGS_IN = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"}, "interval": {"type": "integer", "minimum": 1},
        "repositories": {"type": "array", "maxItems": 20, "items": {"oneOf": [
            {"type": "string", "description": "path relative to the home directory"},
            {"type": "object", "additionalProperties": False, "required": ["path"],
             "properties": {"path": {"type": "string"}, "remote": {"type": "string", "default": "origin"}}}]}},
        "strip_outputs": {"type": "boolean", "description": "absent: unchanged"},
        "clone": {"type": "array", "maxItems": 20, "description": "absent: unchanged", "items": {"oneOf": [
            {"type": "string", "description": "http(s) URL; cloned to a folder named after it"},
            {"type": "object", "additionalProperties": False, "required": ["url"],
             "properties": {"url": {"type": "string"}, "path": {"type": "string"}}}]}},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, response: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "OK", **_json(response)},
                      "400": {"description": "Invalid input", **_json({"$ref": "#/components/schemas/Error"})},
                      "403": {"description": "Not signed in, or not your autosave",
                              **_json({"$ref": "#/components/schemas/Error"})},
                      "404": {"description": "No such repository", **_json({"$ref": "#/components/schemas/Error"})}},
    }
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def openapi_document(prefix: str) -> dict[str, Any]:
    name = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "your own user name (anyone else's gives 403)"}
    repo = {"name": "repo_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    base = "/users/{user}/autosave"
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Titan service API", "version": "1",
                 "description": "Git autosave settings, status and restore; share links. Authenticate with a "
                                "hub token (`Authorization: token ...`) that has access:services!service=titan."},
        "servers": [{"url": prefix.rstrip("/") + "/api"}],
        "components": {
            "securitySchemes": {"hubToken": {"type": "apiKey", "in": "header", "name": "Authorization"}},
            "schemas": {"Repository": _REPO, "Settings": _SETTINGS, "SettingsInput": _SETTINGS_IN,
                        "Error": {"type": "object", "properties": {"status": {"type": "integer"},
                                                                   "message": {"type": "string"}}}},
        },
        "security": [{"hubToken": []}],
        "paths": {
            base: {
                "parameters": [name],
                "get": _op("Your autosave settings and per-repository status",
                           {"$ref": "#/components/schemas/Settings"}),
                "put": _op("Replace your autosave settings", {"$ref": "#/components/schemas/Settings"},
                           {"$ref": "#/components/schemas/SettingsInput"}),
            },
            base + "/repos/{repo_id}": {
                "parameters": [name, repo],
                "get": _op("One repository's status and its latest autosave commits",
                           {"$ref": "#/components/schemas/Repository"}),
            },
            base + "/repos/{repo_id}/snapshot": {
                "parameters": [name, repo],
                "post": _op("Snapshot and push now", {"$ref": "#/components/schemas/Repository"}),
            },
            base + "/repos/{repo_id}/restore": {
                "parameters": [name, repo],
                "post": _op("Create a new branch restore/... at an autosave commit (on the remote)",
                            {"type": "object", "properties": {"branch": {"type": "string"},
                                                              "commit": {"type": "string"},
                                                              "pushed": {"type": "boolean"},
                                                              "message": {"type": "string"}}},
                            {"type": "object", "required": ["commit"],
                             "properties": {"commit": {"type": "string"}}}),
            },
        },
    }
    document["components"]["schemas"].update(link_schemas())
    document["paths"].update(link_paths())
    document["components"]["schemas"].update(usage_schemas())
    document["paths"].update(usage_paths())
    return document
