"""Request bodies checked against the OpenAPI schemas the service publishes (``openapi``), at
the boundary, before the manager: a body that does not fit is ``errors.Invalid`` (HTTP 400) with
a message naming the field and what it must be. What a schema cannot say (valid names, a time in
the future, a path inside the home) is checked on the way in by ``access`` and ``render``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from service.sharing.errors import Invalid
from service.sharing.openapi import PUBLISH, UPDATE

_VALIDATORS = {"LinkPublish": Draft202012Validator(PUBLISH), "LinkUpdate": Draft202012Validator(UPDATE)}
_TYPES = {"string": "text", "boolean": "true or false", "array": "a list", "object": "an object",
          "number": "a number", "integer": "a whole number", "null": "null"}


def _field(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _types(value: str | list[str]) -> str:
    names = [value] if isinstance(value, str) else value
    return " or ".join(_TYPES.get(name, name) for name in names)


def _sort_key(error: ValidationError) -> tuple[int, int]:
    """The error to report first: the shallowest field, and a wrong type before anything else."""
    return len(error.absolute_path), 0 if error.validator == "type" else 1


def message(error: ValidationError) -> str:
    """A ValidationError as a sentence that names the field."""
    field = _field(error.absolute_path)
    name = field or "the request body"
    kind = error.validator
    expected: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if kind == "type":
        return "the request body must be a JSON object" if not field else f"{field} must be {_types(expected)}"
    if kind == "enum":
        return f"{name} must be one of {', '.join(map(str, expected))}"
    if kind == "additionalProperties":
        unknown = ", ".join(sorted(set(instance) - set(schema.get("properties", {}))))
        return f"unknown fields: {unknown}" if not field else f"{field} has unknown keys: {unknown}"
    if kind == "required":
        missing = [key for key in expected if key not in instance]
        where = f"{field}." if field else ""
        return f"{where}{missing[0] if missing else '?'} is required"
    if kind == "maxLength":
        return f"{name} may be at most {expected} characters"
    if kind == "maxItems":
        return f"{name} may name at most {expected}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{name} must be {'more than' if kind == 'exclusiveMinimum' else 'at least'} {expected}"
    if kind == "oneOf":
        # report the branch of the right type, if any; else say what the field may be
        depth = len(error.absolute_path)
        inner = sorted((e for e in error.context or [] if e.validator != "type" or len(e.absolute_path) > depth),
                       key=_sort_key)
        if inner:
            return message(inner[0])
        return f"{name} must be one of: " + "; ".join(str(choice.get("description", choice.get("type", "?")))
                                                       for choice in expected)
    return f"{name}: {error.message}"


def validate(body: Any, schema: str) -> dict[str, Any]:
    """``body`` if it fits the named schema (``LinkPublish``, ``LinkUpdate``); else ``Invalid``."""
    errors = sorted(_VALIDATORS[schema].iter_errors(body), key=_sort_key)
    if errors:
        raise Invalid(message(errors[0]))
    result: dict[str, Any] = body
    return result
