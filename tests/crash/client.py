"""A small signed-request client over raw HTTP for the crash test.

Raw HTTP rather than an official SDK: the load generator must tell "the server answered" (any
status, recorded as is) from "no answer" (the server was killed mid-request: the outcome is
unknown), and the SDKs retry and wrap both into the same exceptions."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from nubes.api.signing import sign_v1

VERSIONS = {"ecs": "2014-05-26", "vpc": "2016-04-28"}
REGION = "cn-hangzhou"


class Unreachable(Exception):
    """No answer: refused, reset or timed out. Whether the server acted on the request is unknown."""

    def __init__(self, reason: str, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def code(self) -> str:
        return str(self.body.get("Code", ""))


class Client:
    """One signed v1 POST per call on a fresh connection (a killed server leaves no pooled socket behind)."""

    def __init__(self, endpoint: str, key: tuple[str, str], timeout: float = 30.0) -> None:
        host, _, port = endpoint.rpartition(":")
        self.host, self.port = host, int(port)
        self.key = key
        self.timeout = timeout

    def call(self, product: str, action: str, params: dict[str, str]) -> Answer:
        common = {"Action": action, "Version": VERSIONS[product], "RegionId": REGION}
        signed = sign_v1("POST", {**common, **params}, *self.key)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", "/?" + urlencode(signed, quote_via=quote))
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        except TimeoutError as error:
            raise Unreachable(f"{type(error).__name__}: {error}", timed_out=True) from error
        except (OSError, http.client.HTTPException) as error:
            raise Unreachable(f"{type(error).__name__}: {error}", timed_out=False) from error
        finally:
            conn.close()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw[:500].decode(errors="replace")}
        return Answer(status, body if isinstance(body, dict) else {"_raw": str(body)[:500]})
