"""What the console's pages answer: a Page (status, body, headers), redirects, plain-text refusals,
and the Request they are given."""

from __future__ import annotations

from dataclasses import dataclass, field

PREFIX = "/console"


@dataclass
class Page:
    status: int
    body: bytes = b""
    content_type: bytes = b"text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookies: dict[str, str]
    htmx: bool


def redirect(location: str, *headers: tuple[bytes, bytes]) -> Page:
    return Page(303, headers=[(b"location", location.encode()), *headers])


def plain(status: int, text: str) -> Page:
    return Page(status, text.encode(), b"text/plain; charset=utf-8")
