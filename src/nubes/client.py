"""A small signed client for the nubes API, used by the CLI (and usable by scripts)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from nubes.api.signing import sign_v1
from nubes.api.versions import PRODUCT_VERSIONS

VERSIONS = {product: version for version, product in PRODUCT_VERSIONS.items()}


class ClientError(Exception):
    """The API answered with an error (or could not be reached)."""

    def __init__(self, code: str, message: str, http_status: int = 0, request_id: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_id = request_id


@dataclass(frozen=True)
class Credentials:
    endpoint: str
    region_id: str
    access_key_id: str
    access_key_secret: str


def base_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def signed_query(creds: Credentials, product: str, action: str, params: dict[str, str]) -> str:
    """The query string of a v1-signed POST, as aliyun-python-sdk-core sends it."""
    query = {"Action": action, "Version": VERSIONS[product], "Format": "JSON", **params}
    return urlencode(sign_v1("POST", query, creds.access_key_id, creds.access_key_secret))


def error_of(http_status: int, body: bytes) -> ClientError:
    """The ClientError an error answer (its ECS JSON body, or whatever else came back) stands for."""
    try:
        data = json.loads(body)
    except ValueError:
        return ClientError("SDK.UnknownServerError", body[:200].decode(errors="replace"), http_status)
    return ClientError(
        str(data.get("Code", "Unknown")),
        str(data.get("Message", "")),
        http_status,
        str(data.get("RequestId", "")),
    )


def call(
    creds: Credentials, product: str, action: str, params: dict[str, str], timeout: float = 60
) -> dict[str, Any]:
    """POST a v1-signed request, as aliyun-python-sdk-core does; return the JSON body."""
    query = signed_query(creds, product, action, params)
    request = urllib.request.Request(f"{base_url(creds.endpoint)}/?{query}", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        raise error_of(error.code, error.read()) from None
    except (urllib.error.URLError, OSError) as error:
        raise ClientError("SDK.ServerUnreachable", f"cannot reach {creds.endpoint}: {error}") from None
