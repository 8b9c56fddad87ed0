"""The usage and admin-overview part of the service's OpenAPI document (``service.openapi``)."""

from __future__ import annotations

from typing import Any

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ROW = {"type": "object", "properties": {
    "user": {"type": "string"}, "kind": {"enum": ["server", "dask"]}, "profile": {"type": "string"},
    "server_hours": {"type": "number"}, "dask_core_hours": {"type": "number"},
    "dask_memory_gib_hours": {"type": "number", "description": "GiB of memory × hours"}}}
_USAGE = {"type": "object", "properties": {
    "user": {"type": "string"}, "start": {"type": "string", "format": "date-time"},
    "end": {"type": "string", "format": "date-time"},
    "rows": {"type": "array", "items": {"$ref": "#/components/schemas/UsageRow"}},
    "totals": {"type": "object", "properties": {k: {"type": "number"} for k in (
        "server_hours", "dask_core_hours", "dask_memory_gib_hours")}}}}
_OVERVIEW = {"type": "object", "properties": {
    "servers": {"type": "array", "items": {"type": "object"}}, "gpus": {"type": "array", "items": {"type": "object"}},
    "clusters": {"type": "array", "items": {"type": "object"}}}}


def usage_schemas() -> dict[str, Any]:
    return {"UsageRow": _ROW, "Usage": _USAGE, "Overview": _OVERVIEW}


def usage_paths() -> dict[str, Any]:
    date = {"type": "string", "description": "YYYY-MM-DD (the day included) or an ISO 8601 time"}
    params = [
        {"name": "user", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "your own user name (an admin: anyone's; else 403)"},
        {"name": "start", "in": "query", "schema": date, "description": "default: 30 days before end"},
        {"name": "end", "in": "query", "schema": date, "description": "default: now"},
        {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}, "description": "csv: a CSV file"},
    ]
    return {
        "/users/{user}/usage": {"parameters": params, "get": {
            "summary": "Server hours by profile, and Dask core-hours and memory-hours, in a date range",
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Usage"}},
                "text/csv": {"schema": {"type": "string"}}}},
                "400": {"description": "A bad date or range", **_ERROR},
                "403": {"description": "Not your usage", **_ERROR}}}},
        "/admin/overview": {"get": {
            "summary": "Admins: running servers with their profiles, GPUs by holder, Dask clusters",
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Overview"}}}},
                "403": {"description": "Not a hub admin", **_ERROR}}}},
    }
