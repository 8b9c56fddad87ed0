"""User input in messages and logs: escaped and bounded, whatever was sent."""

from __future__ import annotations

import unicodedata

MESSAGE_LIMIT = 400  # characters of a message shown to a user or written to a log line


def printable(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` with control and format characters (NUL, newlines, U+202E, ...) escaped, cut at
    ``limit`` characters with an ellipsis: safe to put in a page, a JSON error or a log line."""
    escaped = "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch
                      for ch in text[: limit * 2])
    return escaped if len(escaped) <= limit and len(text) <= limit * 2 else escaped[: limit - 1] + "…"


def quoted_names(names: list[str], most: int = 5, longest: int = 40) -> str:
    """A short list of user-sent names for a message: each quoted, escaped and cut, at most ``most``."""
    shown = [repr(printable(name, longest)) for name in names[:most]]
    if len(names) > most:
        shown.append(f"and {len(names) - most} more")
    return ", ".join(shown)
