"""The console's ASGI application, and the dispatcher that serves it at /console/ next to the API.

Pages are rendered on the server with Jinja2; htmx (vendored in static/) swaps the instance
table in place when the search form changes. Every POST needs its CSRF token; the session
cookie is HttpOnly, SameSite=Strict and expires (see sessions.py for where the secret lives)."""

from __future__ import annotations

import logging
import re
import time
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import jinja2

from nubes.client import ClientError
from nubes.console import (
    auto_snapshot_policies,
    csrf,
    disks,
    eips,
    images,
    instance_actions,
    instance_list,
    instance_tabs,
    instances,
    key_pairs,
    nat_gateways,
    overview,
    routing,
    security_groups,
    snapshots,
    vnc,
    vpcs,
    wizard,
)
from nubes.console.api import ApiCaller, Asgi, Message
from nubes.console.routing import Ctx, Route, post
from nubes.console.sessions import Sessions
from nubes.console.web import PREFIX, Page, Request, plain, redirect

log = logging.getLogger("nubes.console")

SESSION_COOKIE = "nubes_session"
DEFAULT_REGION = "cn-hangzhou"
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
STATIC_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # no "..", no hidden files, no "/"
STATIC_TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}


def cookie(name: str, value: str, max_age: int) -> tuple[bytes, bytes]:
    return (
        b"set-cookie",
        f"{name}={value}; Path={PREFIX}; Max-Age={max_age}; HttpOnly; SameSite=Strict".encode(),
    )


def parse_cookies(raw: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies.setdefault(name, value)
    return cookies


def first_values(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


class ConsoleApp:
    def __init__(self, api: Asgi, sessions: Sessions | None = None) -> None:
        self.api = ApiCaller(api)
        self.sessions = sessions or Sessions()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("nubes.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.routes: list[Route] = [
            post("/signout", self.signout),
            post("/region", self.switch_region),
            *overview.ROUTES,
            *instance_list.ROUTES,
            *wizard.ROUTES,  # before the instance pages: /instances/new is no instance ID
            *instances.ROUTES,
            *disks.ROUTES,
            *snapshots.ROUTES,
            *auto_snapshot_policies.ROUTES,
            *images.ROUTES,
            *vpcs.ROUTES,
            *security_groups.ROUTES,
            *key_pairs.ROUTES,
            *eips.ROUTES,
            *nat_gateways.ROUTES,
            *instance_actions.ROUTES,
            *instance_tabs.ROUTES,
            *vnc.ROUTES,
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, too_large = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request = Request(
            scope["method"].upper(),
            scope["path"],
            first_values(scope["query_string"].decode("latin-1")),
            first_values(body.decode("utf-8", errors="replace")) if not too_large else {},
            parse_cookies(headers.get("cookie", "")),
            headers.get("hx-request") == "true",
        )
        started = time.perf_counter()
        try:
            page = Page(413, b"Request too large") if too_large else await self.route(request)
        except Exception:  # a bug: logged with its traceback, answered without it
            log.exception("console error on %s %s", request.method, request.path)
            page = Page(500, b"Internal error", b"text/plain; charset=utf-8")
        out = [
            (b"content-type", page.content_type),
            (b"content-length", str(len(page.body)).encode()),
            *SECURITY_HEADERS,
            *page.headers,
            # the time the server spent on the page, API calls included (bench/console.py reads it)
            (b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()),
        ]
        await send({"type": "http.response.start", "status": page.status, "headers": out})
        await send({"type": "http.response.body", "body": page.body})

    async def route(self, request: Request) -> Page:
        path = request.path.removeprefix(PREFIX).rstrip("/") or "/"
        if path.startswith("/static/") and request.method == "GET":
            return self.static(path.removeprefix("/static/"))
        if path == "/signin":
            return self.signin_form() if request.method == "GET" else await self.signin(request)
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return redirect(f"{PREFIX}/signin")
        if request.method == "POST" and not csrf.valid(session.csrf_token, request.form.get("csrf_token")):
            return plain(403, "Forbidden: missing or wrong CSRF token")
        found = routing.find(self.routes, request.method, path)
        if found is None:
            return (
                plain(405, "Method not allowed")
                if routing.known(self.routes, path)
                else plain(404, "Not found")
            )
        route, match = found
        return await route.handler(Ctx(session, request, self.api, self.render), match)

    async def signout(self, ctx: Ctx, _: re.Match[str]) -> Page:
        self.sessions.end(ctx.session.session_id)
        return redirect(f"{PREFIX}/signin", cookie(SESSION_COOKIE, "", 0))

    async def switch_region(self, ctx: Ctx, _: re.Match[str]) -> Page:
        region = ctx.request.form.get("region", "")
        if region in ctx.session.regions:
            ctx.session.region_id = region
        back = ctx.request.form.get("next", "")
        return redirect(back if back.startswith(f"{PREFIX}/") and "//" not in back else f"{PREFIX}/")

    def render(self, name: str, *, http_status: int = 200, **context: Any) -> Page:
        context.setdefault("session", None)
        context.setdefault("error", None)
        return Page(http_status, self.templates.get_template(name).render(prefix=PREFIX, **context).encode())

    def static(self, name: str) -> Page:
        """A file under static/ (subdirectories too: noVNC's ES modules import each other by
        relative paths); every part of the name a plain file name, so nothing outside is reached."""
        files = resources.files("nubes.console") / "static"
        kind = STATIC_TYPES.get(name[name.rfind(".") :]) if "." in name else None
        parts = name.split("/")
        if kind is None or not all(STATIC_PART.fullmatch(part) for part in parts):
            return plain(404, "Not found")
        target = files.joinpath(*parts)
        if not target.is_file():
            return plain(404, "Not found")
        return Page(200, target.read_bytes(), kind, [(b"cache-control", b"public, max-age=86400")])

    # ---- sign in and out ------------------------------------------------------------------------

    def signin_form(self, error: ClientError | None = None, status: int = 200) -> Page:
        token = csrf.new_token()
        page = self.render("signin.html", http_status=status, csrf_token=token, error=error)
        page.headers.append(cookie(csrf.SIGNIN_COOKIE, token, csrf.SIGNIN_SECONDS))
        return page

    async def signin(self, request: Request) -> Page:
        if request.method != "POST":
            return plain(405, "Method not allowed")
        if not csrf.valid(request.cookies.get(csrf.SIGNIN_COOKIE), request.form.get("csrf_token")):
            return plain(403, "Forbidden: missing or wrong CSRF token")
        key = (request.form.get("access_key_id", "").strip(), request.form.get("access_key_secret", ""))
        try:
            answer = await self.api.call(key, "ecs", "DescribeRegions", {})
        except ClientError as error:
            return self.signin_form(error, error.http_status or 502)
        regions = [str(r["RegionId"]) for r in answer.get("Regions", {}).get("Region", [])]
        region = DEFAULT_REGION if DEFAULT_REGION in regions or not regions else regions[0]
        session = self.sessions.create(key[0], key[1], region, regions)
        return redirect(
            f"{PREFIX}/",
            cookie(SESSION_COOKIE, session.session_id, self.sessions.seconds),
            cookie(csrf.SIGNIN_COOKIE, "", 0),
        )


async def _read_body(receive: Any) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size <= MAX_FORM_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), size > MAX_FORM_BYTES


class WithConsole:
    """The server's ASGI application: /console and below to the console, the rest (and the
    lifespan) to the API, which is left as it is."""

    def __init__(self, api: Asgi, sessions: Sessions | None = None) -> None:
        self.api = api
        self.console = ConsoleApp(api, sessions)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.console(scope, receive, send)
        else:
            await self.api(scope, receive, send)
