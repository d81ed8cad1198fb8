"""The console's route table: each page module lists its Routes (method, path pattern, handler),
and app.py joins the lists. A handler is given a Ctx (the signed-in session, the request, the
API, the template renderer) and the pattern's match, and answers a Page.

Paths are matched without the /console prefix and without a trailing slash; every POST has
had its CSRF token checked before its handler runs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nubes.client import ClientError
from nubes.console.api import ApiCaller
from nubes.console.sessions import Session
from nubes.console.web import Page, Request

Render = Callable[..., Page]


@dataclass
class Ctx:
    session: Session
    request: Request
    api: ApiCaller
    renderer: Render

    @property
    def key(self) -> tuple[str, str]:
        return (self.session.access_key_id, self.session.access_key_secret)

    @property
    def region_id(self) -> str:
        return self.session.region_id

    async def call(self, product: str, action: str, **params: str) -> dict[str, Any]:
        """One signed API call with exactly `params` (RegionId is not added: not every action
        takes it, and the API refuses a parameter it does not know)."""
        return await self.api.call(self.key, product, action, params)

    def render(
        self,
        template: str,
        *,
        error: ClientError | None = None,
        http_status: int | None = None,
        **context: Any,
    ) -> Page:
        """The template with the session; an API error shown on it, answered with its status."""
        status = http_status if http_status is not None else ((error.http_status or 400) if error else 200)
        return self.renderer(template, http_status=status, session=self.session, error=error, **context)


Handler = Callable[[Ctx, "re.Match[str]"], Awaitable[Page]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def get(pattern: str, handler: Handler) -> Route:
    return Route("GET", re.compile(pattern), handler)


def post(pattern: str, handler: Handler) -> Route:
    return Route("POST", re.compile(pattern), handler)


def find(routes: list[Route], method: str, path: str) -> tuple[Route, re.Match[str]] | None:
    for route in routes:
        match = route.pattern.fullmatch(path)
        if match is not None and route.method == method:
            return route, match
    return None


def known(routes: list[Route], path: str) -> bool:
    """Whether some route has the path, under any method (a 405 rather than a 404)."""
    return any(route.pattern.fullmatch(path) for route in routes)
