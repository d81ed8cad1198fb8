"""An HTTP request as the RPC protocol sees it: merged parameters, Action, Version, Format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from nubes import errors

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_FIELDS = 5000
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class ApiRequest:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    query_pairs: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return self.params.get("Action") or self.headers.get("x-acs-action", "")

    @property
    def version(self) -> str:
        return self.params.get("Version") or self.headers.get("x-acs-version", "")

    @property
    def format(self) -> str:
        return "XML" if self.params.get("Format", "").upper() == "XML" else "JSON"


_XML_FORMAT = re.compile(rb"(?:^|&)Format=xml(?:&|$)", re.IGNORECASE)


def sniff_format(query: bytes, body: bytes = b"") -> str:
    """The response format of a request refused before its parameters could be parsed; the
    whole body is searched (a regular expression over 4 MB is a few milliseconds)."""
    return "XML" if _XML_FORMAT.search(query) or asks_for_xml(body) else "JSON"


def asks_for_xml(body: bytes) -> bool:
    return _XML_FORMAT.search(body) is not None


def parse_pairs(text: str, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, errors="replace", max_num_fields=MAX_FIELDS)
    except ValueError:
        raise errors.invalid_parameter(message=f"The {what} has more than {MAX_FIELDS} parameters.") from None


def build_request(
    method: str, path: str, query: bytes, raw_headers: list[tuple[bytes, bytes]], body: bytes
) -> ApiRequest:
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    query_string = query.decode("latin-1")
    request = ApiRequest(method.upper(), path or "/", query_string, headers, body)
    request.query_pairs = parse_pairs(query_string, "query string")
    params = dict(request.query_pairs)
    if body and headers.get("content-type", "").lower().startswith(FORM_TYPE):
        params.update(parse_pairs(body.decode("utf-8", errors="replace"), "request body"))
    request.params = params
    return request
