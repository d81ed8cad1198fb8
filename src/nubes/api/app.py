"""The ASGI application: one RPC endpoint for the ECS and VPC APIs.

A request goes protocol (parse, authenticate, throttle, validate) -> action -> domain -> store.
Every failure is an ECS error body; a bug is logged with its traceback and answered as
InternalError without one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from nubes import errors, ids
from nubes.api import vnc
from nubes.api.auth import Authenticator
from nubes.api.context import ActionContext
from nubes.api.nonce_batch import NonceBatch
from nubes.api.order import in_order, orders_of
from nubes.api.params import parse_params
from nubes.api.registry import HOST_IDS, ActionSpec, Registry
from nubes.api.render import JSON_TYPE, render
from nubes.api.request import MAX_BODY_BYTES, ApiRequest, asks_for_xml, build_request, sniff_format
from nubes.api.throttle import Throttle
from nubes.api.unsupported import check_owner, refuse_unsupported
from nubes.api.versions import PRODUCT_VERSIONS
from nubes.domain.accounts import Principal
from nubes.domain.nonces import NonceClaim
from nubes.domain.services import Services
from nubes.errors import ApiError

log = logging.getLogger("nubes.api")

Scope = dict[str, Any]


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def error_body(error: ApiError, request_id: str, host_id: str) -> dict[str, Any]:
    return {
        "RequestId": request_id,
        "HostId": host_id,
        "Code": error.code,
        "Message": error.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}",
    }


@dataclass
class Call:
    """A request between its authentication and its action: its nonce is to be recorded."""

    started: float
    request_id: str
    fmt: str
    product: str = "ecs"
    action: str = "-"
    account: str = "-"
    spec: ActionSpec | None = None
    request: ApiRequest | None = None
    principal: Principal | None = None
    claim: NonceClaim | None = None


class ApiApp:
    def __init__(
        self, services: Services, registry: Registry, authenticator: Authenticator, throttle: Throttle
    ) -> None:
        self.services = services
        self.registry = registry
        self.authenticator = authenticator
        self.throttle = throttle
        self.nonces = NonceBatch(authenticator.nonces)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body, too_large, dropped_body_xml = await _read_body(receive)
        if scope["path"] == "/healthz":
            response = Response(200, b'{"Status":"ok"}', JSON_TYPE)
        elif too_large:
            error = errors.request_entity_too_large(f"The request body exceeds {MAX_BODY_BYTES} bytes.")
            fmt = "XML" if dropped_body_xml else sniff_format(scope["query_string"])
            response = self._error(error, ids.new_request_id(), fmt, "ecs")
        else:
            response = await self._handle(
                scope["method"], scope["path"], scope["query_string"], scope["headers"], body
            )
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            *response.extra_headers,
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        """The one websocket the API serves: DescribeInstanceVncUrl's (nubes.api.vnc)."""
        if scope["path"] == vnc.PATH:
            await vnc.serve(scope, receive, send, self.services.vnc.redeem)
            return
        await receive()
        await send({"type": "websocket.close", "code": 1000})  # before accepting: a 403

    def handle(
        self, method: str, path: str, query: bytes, raw_headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Response:
        """The whole request on the calling thread, its nonce recorded on its own."""
        call = self._begin(method, path, query, raw_headers, body)
        if isinstance(call, Response):
            return call
        claim = call.claim
        assert claim is not None
        return self._finish(call, lambda: self.authenticator.nonces.record([claim])[0])

    async def _handle(
        self, method: str, path: str, query: bytes, raw_headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Response:
        call = self._begin(method, path, query, raw_headers, body)
        if isinstance(call, Response):
            return call
        assert call.claim is not None
        fresh = self.nonces.claim(call.claim)
        await asyncio.wait([fresh])  # its failure is _finish's to answer
        return self._finish(call, fresh.result)

    def _begin(
        self, method: str, path: str, query: bytes, raw_headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Call | Response:
        """Parse and authenticate: a call whose nonce is to be recorded, or the error answer."""
        call = Call(time.perf_counter(), ids.new_request_id(), sniff_format(query, body))
        try:
            if method.upper() not in ("GET", "POST"):
                raise errors.unsupported_http_method(
                    f"HTTP method {method} is not supported; use GET or POST."
                )
            request = build_request(method, path, query, raw_headers, body)
            call.fmt = request.format
            version, call.action = request.version, request.action or "-"
            call.product = PRODUCT_VERSIONS.get(version, "ecs")
            if not version:
                raise errors.missing_parameter("Version", common=True)
            if not request.action:
                raise errors.missing_parameter("Action", common=True)
            call.spec = self.registry.find(version, request.action)
            call.request = request
            call.principal, call.claim = self.authenticator.verify(request)
            call.account = call.principal.account_name
        except ApiError as error:
            return self._done(call, self._error(error, call.request_id, call.fmt, call.product))
        except Exception:
            log.exception("internal error in %s (request %s)", call.action, call.request_id)
            return self._done(
                call, self._error(errors.internal_error(), call.request_id, call.fmt, call.product)
            )
        return call

    def _finish(self, call: Call, fresh: Callable[[], bool]) -> Response:
        """The action, once `fresh` says (or raises) whether the call's nonce was new."""
        try:
            if not fresh():
                raise errors.signature_nonce_used()
            assert call.spec is not None and call.principal is not None and call.request is not None
            wait = self.throttle.admit(call.principal.account_id, call.spec.name)
            if wait:
                raise errors.throttling(wait)
            wire: Mapping[str, str] = call.request.params
            context = ActionContext(
                call.request_id,
                call.principal,
                self.services,
                call.spec.product,
                call.spec.name,
                wire,
                call.request.headers.get("host", ""),
            )
            if call.spec.wire_defaults is not None:
                wire = call.spec.wire_defaults(context, wire)
            refuse_unsupported(call.spec.refused, wire)
            check_owner(call.principal, wire)
            params = parse_params(call.spec.params, wire)
            result = self._run(call.spec, context, params)
            body = in_order(
                {"RequestId": call.request_id, **result}, orders_of(call.spec.product, call.spec.name)
            )
            payload, content_type = render(body, f"{call.spec.name}Response", call.fmt)
            response = Response(200, payload, content_type)
        except ApiError as error:
            response = self._error(error, call.request_id, call.fmt, call.product)
        except Exception:
            log.exception("internal error in %s (request %s)", call.action, call.request_id)
            response = self._error(errors.internal_error(), call.request_id, call.fmt, call.product)
        return self._done(call, response)

    @staticmethod
    def _done(call: Call, response: Response) -> Response:
        elapsed_ms = (time.perf_counter() - call.started) * 1000
        log.info(
            "%s account=%s status=%d %.1fms", call.action[:64], call.account, response.status, elapsed_ms
        )
        return response

    def _run(self, spec: ActionSpec, context: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        """The action in one unit of work: its effects and its ClientToken commit together, so a
        crash at any point leaves either both (a retry gets the first answer) or neither. A dry
        run is the action in a unit of work that never commits."""
        if params.get("DryRun") is True:
            # Every check the action makes, and none of its effects: the unit of work rolls back,
            # so nothing is written and no agent is told (notifications wait for the commit).
            with self.services.db.unit_of_work():
                spec.handler(context, params)
                raise errors.dry_run_operation()
        token = params.get("ClientToken") if spec.idempotent else None
        idempotency = self.services.idempotency
        account_id = context.principal.account_id
        try:
            with self.services.db.unit_of_work():
                if token:
                    earlier = idempotency.lookup(account_id, spec.name, token, params)
                    if earlier is not None:
                        return earlier
                result = spec.handler(context, params)
                if token:
                    idempotency.remember(account_id, spec.name, token, params, result)
                return result
        except IntegrityError:
            # Another process committed the same ClientToken first: its answer is the answer.
            earlier = idempotency.lookup(account_id, spec.name, token, params) if token else None
            if earlier is None:
                raise
            return earlier

    def _error(self, error: ApiError, request_id: str, fmt: str, product: str) -> Response:
        payload, content_type = render(error_body(error, request_id, HOST_IDS[product]), "Error", fmt)
        response = Response(error.http_status, payload, content_type)
        if error.retry_after:
            response.extra_headers.append((b"x-acs-retry-after", str(error.retry_after).encode()))
        return response

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.services.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Any) -> tuple[bytes, bool, bool]:
    """The body, whether it was too large (then dropped), and whether a dropped body asked
    for XML (`Format=XML` may sit anywhere in it, even across two chunks)."""
    chunks: list[bytes] = []
    size = 0
    too_large = False
    xml = False
    tail = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if not too_large:
                too_large = True
                chunks.append(chunk)
                tail = b"".join(chunks)
                chunks = []
            else:
                tail += chunk
            xml = xml or asks_for_xml(tail)
            tail = tail[-16:]
        elif chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), too_large, xml
