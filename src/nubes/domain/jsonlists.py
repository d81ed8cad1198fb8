"""Lists that arrive as JSON text (`diskIds='["d-1"]'`, `timePoints='[1,2]'`): one decoder, so
every such parameter refuses what the typed parameters refuse (NUL characters, lone surrogates
from escapes like \\ud800, which no store or encoder takes)."""

from __future__ import annotations

import json
from typing import Any


def valid_text(text: str) -> bool:
    """False for NUL characters and lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_json_list(text: str) -> list[Any] | None:
    """The JSON array in `text`, or None when it is not one or holds text no store can keep."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, list):
        return None
    if any(isinstance(item, str) and not valid_text(item) for item in decoded):
        return None
    return decoded
