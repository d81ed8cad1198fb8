"""Responses as ECS writes them: JSON by default, XML with Format=XML.

Handlers return ECS-shaped dicts, lists already wrapped (`{"Regions": {"Region": [...]}}`);
XML repeats a list's element under its parent's key, as ECS does."""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

import orjson

JSON_TYPE = "application/json;charset=utf-8"
XML_TYPE = "text/xml;charset=utf-8"  # the Tea SDKs parse an XML error only with exactly this


# Characters XML 1.0 cannot carry, even escaped; they are replaced, not dropped silently.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render(body: dict[str, Any], root: str, fmt: str) -> tuple[bytes, str]:
    if fmt == "XML":
        return render_xml(body, root), XML_TYPE
    return orjson.dumps(body), JSON_TYPE


def render_xml(body: dict[str, Any], root: str) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>']
    _element(parts, root, body)
    return "".join(parts).encode()


def _element(parts: list[str], name: str, value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _element(parts, name, item)
        return
    parts.append(f"<{name}>")
    if isinstance(value, dict):
        for key, child in value.items():
            _element(parts, key, child)
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif value is not None:
        parts.append(escape(_XML_INVALID.sub("\ufffd", str(value))))
    parts.append(f"</{name}>")
