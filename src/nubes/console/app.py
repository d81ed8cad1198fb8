"""The console's ASGI application, and the dispatcher that serves it at /console/ next to the API.

Pages are rendered on the server with Jinja2; htmx (vendored in static/) swaps the instance
table in place when the search form changes. Every POST needs its CSRF token; the session
cookie is HttpOnly, SameSite=Strict and expires (see sessions.py for where the secret lives)."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2

from nubes.client import ClientError
from nubes.console import csrf
from nubes.console.api import ApiCaller, Asgi, Message
from nubes.console.instances import InstancePages
from nubes.console.sessions import Session, Sessions
from nubes.console.web import PREFIX, Page, Request, plain, redirect

log = logging.getLogger("nubes.console")

SESSION_COOKIE = "nubes_session"
DEFAULT_REGION = "cn-hangzhou"
PAGE_SIZE = 20
MAX_FORM_BYTES = 16 * 1024
INSTANCE_STATUSES = ("Pending", "Starting", "Running", "Stopping", "Stopped")
IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
STATIC_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8"}


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
        self.instance_pages = InstancePages(self.api, self.render)

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
        if request.method == "POST":
            if not csrf.valid(session.csrf_token, request.form.get("csrf_token")):
                return plain(403, "Forbidden: missing or wrong CSRF token")
            if path == "/signout":
                self.sessions.end(session.session_id)
                return redirect(f"{PREFIX}/signin", cookie(SESSION_COOKIE, "", 0))
            if path == "/region":
                region = request.form.get("region", "")
                if region in session.regions:
                    session.region_id = region
                back = request.form.get("next", "")
                return redirect(back if back in (f"{PREFIX}/", f"{PREFIX}/instances") else f"{PREFIX}/")
            if path == "/instances/batch":
                failed = await self.instance_pages.batch(session, request.form)
                return (
                    await self.instances(session, request, failed)
                    if failed
                    else redirect(f"{PREFIX}/instances")
                )
            if path.startswith("/instances/"):
                return await self.instance_pages.post(session, path.removeprefix("/instances/"), request.form)
            return plain(404, "Not found")
        if request.method != "GET":
            return plain(405, "Method not allowed")
        if path == "/":
            return await self.overview(session)
        if path == "/instances":
            return await self.instances(session, request)
        if path.startswith("/instances/"):
            return await self.instance_pages.get(session, path.removeprefix("/instances/"))
        return plain(404, "Not found")

    def render(self, name: str, *, http_status: int = 200, **context: Any) -> Page:
        context.setdefault("session", None)
        context.setdefault("error", None)
        return Page(http_status, self.templates.get_template(name).render(prefix=PREFIX, **context).encode())

    def static(self, name: str) -> Page:
        files = resources.files("nubes.console") / "static"
        kind = STATIC_TYPES.get(name[name.rfind(".") :]) if "." in name else None
        target = files / name
        if kind is None or "/" in name or not target.is_file():
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

    # ---- pages ----------------------------------------------------------------------------------

    async def _total(self, session: Session, product: str, action: str, **params: str) -> int:
        answer = await self.api.call(
            (session.access_key_id, session.access_key_secret),
            product,
            action,
            {"RegionId": session.region_id, "PageSize": "1", **params},
        )
        return int(answer.get("TotalCount", 0))

    async def overview(self, session: Session) -> Page:
        try:
            totals = await asyncio.gather(
                *(self._total(session, "ecs", "DescribeInstances", Status=s) for s in INSTANCE_STATUSES),
                self._total(session, "ecs", "DescribeDisks"),
                self._total(session, "ecs", "DescribeSnapshots"),
                self._total(session, "ecs", "DescribeImages", ImageOwnerAlias="self"),
                self._total(session, "vpc", "DescribeVpcs"),
                self._total(session, "ecs", "DescribeSecurityGroups"),
            )
        except ClientError as error:
            return self.render("overview.html", session=session, error=error, instances={}, counts={})
        n = len(INSTANCE_STATUSES)
        instances = dict(zip(INSTANCE_STATUSES, totals[:n]))
        names = ("Disks", "Snapshots", "Custom images", "VPCs", "Security groups")
        counts = dict(zip(names, totals[n:]))
        return self.render("overview.html", session=session, instances=instances, counts=counts)

    async def instances(self, session: Session, request: Request, failed: ClientError | None = None) -> Page:
        query = request.query.get("q", "").strip()
        status = request.query.get("status", "")
        try:
            page_number = max(1, int(request.query.get("page", "1")))
        except ValueError:
            page_number = 1
        params = {"RegionId": session.region_id, "PageSize": str(PAGE_SIZE), "PageNumber": str(page_number)}
        if status in INSTANCE_STATUSES:
            params["Status"] = status
        else:
            status = ""
        if query.startswith("i-"):
            params["InstanceIds"] = f'["{query}"]' if '"' not in query else "[]"
        elif IPV4.match(query):
            params["PrivateIpAddresses"] = f'["{query}"]'
        elif query:
            params["InstanceName"] = query
        key = (session.access_key_id, session.access_key_secret)
        rows: list[dict[str, Any]] = []
        total = 0
        error = failed
        try:
            answer = await self.api.call(key, "ecs", "DescribeInstances", params)
            if not answer.get("TotalCount") and "PrivateIpAddresses" in params:
                params["PublicIpAddresses"] = params.pop("PrivateIpAddresses")
                answer = await self.api.call(key, "ecs", "DescribeInstances", params)
            rows = [_instance_row(i) for i in answer.get("Instances", {}).get("Instance", [])]
            total = int(answer.get("TotalCount", 0))
        except ClientError as e:
            error = e
        pages = max(1, -(-total // PAGE_SIZE))

        def link(number: int) -> str:
            return f"{PREFIX}/instances?" + urlencode({"q": query, "status": status, "page": number})

        context: dict[str, Any] = {
            "session": session,
            "error": error,
            "rows": rows,
            "total": total,
            "q": query,
            "status": status,
            "statuses": INSTANCE_STATUSES,
            "page": page_number,
            "pages": pages,
            "prev_link": link(page_number - 1) if page_number > 1 else "",
            "next_link": link(page_number + 1) if page_number < pages else "",
            "partial": request.htmx,
        }
        status_code = (failed.http_status or 400) if failed else 200
        template = "_instances_table.html" if request.htmx else "instances.html"
        return self.render(template, http_status=status_code, **context)


def _instance_row(instance: dict[str, Any]) -> dict[str, Any]:
    private = instance.get("VpcAttributes", {}).get("PrivateIpAddress", {}).get("IpAddress", [])
    public = instance.get("PublicIpAddress", {}).get("IpAddress", [])
    eip = instance.get("EipAddress", {}).get("IpAddress", "")
    return {
        "id": instance.get("InstanceId", ""),
        "name": instance.get("InstanceName", ""),
        "status": instance.get("Status", ""),
        "type": instance.get("InstanceType", ""),
        "zone": instance.get("ZoneId", ""),
        "private_ips": list(private),
        "public_ips": [*public, *([eip] if eip else [])],
    }


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

    def __init__(self, api: Asgi) -> None:
        self.api = api
        self.console = ConsoleApp(api)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.console(scope, receive, send)
        else:
            await self.api(scope, receive, send)
