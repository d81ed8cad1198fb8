"""Done when: every protocol error case answers its ECS Code and HTTP status through the real
clients (Tea default v3, Tea `signature_algorithm='v2'`, aliyun-python-sdk-core), and through raw
HTTP for the cases no client can produce (missing Action, reused nonce bytes, malformed
Authorization, ...). Errors are JSON by default and `<Error>` XML with Format=XML, carrying
RequestId, HostId, Code, Message and Recommend."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi import utils_models as tea_models
from alibabacloud_tea_openapi.exceptions import (
    AlibabaCloudException,
    ClientException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.exceptions import (
    ServerException as TeaServerException,
)
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.acs_exception.exceptions import ServerException as AcsServerException
from aliyunsdkcore.request import CommonRequest
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from darabonba.runtime import RuntimeOptions

from nubes.api.signing import sign_v1, sign_v3

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, acs_client, start_server, stop_server, tea_ecs

ECS = "2014-05-26"
VPC = "2016-04-28"
JSON_TYPE = "application/json;charset=utf-8"
XML_TYPE = "text/xml;charset=utf-8"
ERROR_FIELDS = ("RequestId", "HostId", "Code", "Message", "Recommend")
ROOT = (ROOT_KEY_ID, ROOT_SECRET)
WRONG_SECRET = "definitelyNotTheSecret0000000001"
STS_MARKER = "string to sign is:"
TIMEOUT = 10.0

Key = tuple[str, str]

# The three official Python clients, as the tests name them.
TEA_V3 = "tea-v3"
TEA_V2 = "tea-v2"
ACS = "aliyunsdkcore"
CLIENTS = [TEA_V3, TEA_V2, ACS]


# ---- raw HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def error_fields(self) -> dict[str, str]:
        """The error body as a flat dict, from JSON or from the <Error> XML document."""
        if self.content_type == XML_TYPE:
            root = ET.fromstring(self.body)
            assert root.tag == "Error", self.body
            return {child.tag: child.text or "" for child in root}
        assert self.content_type == JSON_TYPE, self.content_type
        doc = json.loads(self.body)
        assert isinstance(doc, dict), doc
        return dict(doc)

    def json(self) -> dict[str, Any]:
        assert self.content_type == JSON_TYPE, (self.status, self.content_type, self.body[:300])
        doc = json.loads(self.body)
        assert isinstance(doc, dict)
        return doc


def http_request(
    live: LiveServer, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> RawResponse:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=TIMEOUT)
    try:
        conn.request(method, target, body=body or None, headers=dict(headers or {}))
        response = conn.getresponse()
        payload = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
    finally:
        conn.close()


def send_bytes(live: LiveServer, raw: bytes) -> RawResponse:
    """Send exactly these bytes as one HTTP request and read the answer."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=TIMEOUT) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        payload = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)


def query_of(params: Mapping[str, str]) -> str:
    """URL-encode as the clients do (space as %20)."""
    return urlencode(dict(params), quote_via=quote)


def v1_get(live: LiveServer, params: Mapping[str, str]) -> RawResponse:
    return http_request(live, "GET", "/?" + query_of(params))


def signed_v1(
    action: str,
    extra: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    key: Key = ROOT,
    version: str = ECS,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    params = {"Action": action, "Version": version, "Format": "JSON", **(extra or {})}
    signed: dict[str, str] = sign_v1(method, params, key[0], key[1], nonce=nonce, timestamp=timestamp)
    return signed


def utc(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def pct(value: str) -> str:
    return quote(value, safe="-_.~")


def expected_v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The v1 string to sign exactly as client_wire_samples.md §0.1 gives it (independent of nubes)."""
    canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items()) if k != "Signature")
    return f"{method}&%2F&{pct(canon)}"


def assert_error(
    response: RawResponse, code: str, status: int, *, naming: str | None = None
) -> dict[str, str]:
    """The response is error `code` with `status`, a complete body, and (optionally) names a parameter."""
    assert response.status == status, (response.status, response.body[:400])
    fields = response.error_fields()
    assert fields["Code"] == code, fields
    assert set(ERROR_FIELDS) <= set(fields), fields
    assert fields["RequestId"] and fields["Message"], fields
    assert fields["Recommend"] == f"https://api.aliyun.com/troubleshoot?q={code}"
    if naming is not None:
        assert f'"{naming}"' in fields["Message"], fields["Message"]
    return fields


def server_string_to_sign(message: str) -> str:
    assert STS_MARKER in message, message
    return message.split(STS_MARKER, 1)[1]


# ---- the official clients --------------------------------------------------------------------


@dataclass(frozen=True)
class ClientError:
    """What a client reported, normalised across the three clients."""

    client: str
    code: str
    status: int
    message: str
    request_id: str


def tea_client(live: LiveServer, flavor: str, key: Key = ROOT) -> Any:
    return tea_ecs(live, key, **({"signature_algorithm": "v2"} if flavor == TEA_V2 else {}))


def tea_call(
    live: LiveServer,
    flavor: str,
    action: str,
    query: Mapping[str, str],
    *,
    key: Key = ROOT,
    version: str = ECS,
) -> dict[str, Any]:
    """Call any action through the ECS Tea client's own call_api (the path every generated method takes)."""
    params = tea_models.Params(
        action=action,
        version=version,
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    result: dict[str, Any] = tea_client(live, flavor, key).call_api(
        params, tea_models.OpenApiRequest(query=dict(query)), RuntimeOptions()
    )
    return result


def acs_call(
    live: LiveServer,
    action: str,
    query: Mapping[str, str],
    *,
    key: Key = ROOT,
    version: str = ECS,
    region: str = "cn-hangzhou",
    method: str = "POST",
) -> dict[str, Any]:
    request = CommonRequest(domain=live.endpoint, version=version, action_name=action)
    request.set_method(method)
    request.set_protocol_type("http")
    for name, value in query.items():
        request.add_query_param(name, value)
    body = acs_client(live, key, region).do_action_with_exception(request)
    result: dict[str, Any] = json.loads(body)
    return result


def client_call(
    live: LiveServer,
    flavor: str,
    action: str,
    query: Mapping[str, str] | None = None,
    *,
    key: Key = ROOT,
    version: str = ECS,
    region: str = "cn-hangzhou",
) -> dict[str, Any]:
    if flavor == ACS:
        return acs_call(live, action, query or {}, key=key, version=version, region=region)
    return tea_call(live, flavor, action, query or {}, key=key, version=version)


def regions_in(flavor: str, result: dict[str, Any]) -> list[str]:
    """The RegionIds of a DescribeRegions result as client_call returns it."""
    body = result if flavor == ACS else result["body"]
    return [r["RegionId"] for r in body["Regions"]["Region"]]


def tea_error(error: AlibabaCloudException) -> ClientError:
    assert isinstance(error, ClientException if error.status_code < 500 else TeaServerException)
    data = error.data
    assert isinstance(data, dict), data
    assert set(ERROR_FIELDS) <= set(data), data
    assert data["Code"] == error.code
    assert data["RequestId"] == error.request_id and error.request_id
    assert data["Recommend"] == f"https://api.aliyun.com/troubleshoot?q={error.code}"
    # The Tea SDK wraps the server's Message; the server's own text is in .data.
    assert error.message == f"code: {error.status_code}, {data['Message']} request id: {error.request_id}"
    return ClientError(
        "tea", str(error.code), int(error.status_code), str(data["Message"]), str(error.request_id)
    )


def acs_error(error: AcsServerException) -> ClientError:
    assert error.get_request_id(), str(error)
    return ClientError(
        ACS, error.get_error_code(), error.get_http_status(), error.get_error_msg(), error.get_request_id()
    )


def expect_error(call: Callable[[], object]) -> ClientError:
    """Run a client call that must fail with a server error; return the error as the client saw it."""
    try:
        call()
    except AlibabaCloudException as error:
        return tea_error(error)
    except AcsServerException as error:
        return acs_error(error)
    raise AssertionError("the call succeeded but an error was expected")


def client_error(
    live: LiveServer,
    flavor: str,
    action: str,
    query: Mapping[str, str] | None = None,
    *,
    key: Key = ROOT,
    version: str = ECS,
    region: str = "cn-hangzhou",
) -> ClientError:
    return expect_error(
        lambda: client_call(live, flavor, action, query, key=key, version=version, region=region)
    )


def assert_client_error(error: ClientError, code: str, status: int, *, naming: str | None = None) -> None:
    assert (error.code, error.status) == (code, status), error
    if naming is not None:
        assert f'"{naming}"' in error.message, error.message


# ---- wrong signature -----------------------------------------------------------------------


@pytest.fixture
def tea_signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Signatures the Tea client computes, as it computes them (v2 base64 HMAC-SHA1, v3 hex HMAC-SHA256)."""
    seen: list[str] = []
    v2_sign = TeaUtils.get_rpcsignature
    v3_sign = TeaUtils.get_authorization

    def record_v2(signed_params: Any, method: Any, secret: Any) -> Any:
        signature = v2_sign(signed_params, method, secret)
        seen.append(signature)
        return signature

    def record_v3(request: Any, sign_type: Any, payload: Any, ak: Any, secret: Any) -> Any:
        authorization = v3_sign(request, sign_type, payload, ak, secret)
        seen.append(authorization.rsplit("Signature=", 1)[1])
        return authorization

    monkeypatch.setattr(TeaUtils, "get_rpcsignature", staticmethod(record_v2))
    monkeypatch.setattr(TeaUtils, "get_authorization", staticmethod(record_v3))
    return seen


@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_wrong_secret_is_signature_does_not_match_with_the_clients_string_to_sign(
    live: LiveServer, flavor: str, tea_signatures: list[str]
) -> None:
    client = tea_client(live, flavor, (ROOT_KEY_ID, WRONG_SECRET))
    # Hostile characters in a signed value: space, *, ~, /, +, &, =, %, non-ASCII.
    request = ecs_models.DescribeKeyPairsRequest(
        region_id="cn-hangzhou", key_pair_name="a b*c~d/e+f&g=h%i\u00e9\u4e2d"
    )
    error = expect_error(lambda: client.describe_key_pairs(request))
    assert_client_error(error, "SignatureDoesNotMatch", 400)
    assert error.message.startswith("Specified signature is not matched with our calculation.")
    sts = server_string_to_sign(error.message)
    sent = tea_signatures[-1]
    # The signature the client sent is the HMAC of the server's string to sign: they are the same bytes.
    if flavor == TEA_V3:
        assert sts.startswith("ACS3-HMAC-SHA256\n") and len(sts.split("\n")[1]) == 64
        assert hmac.new(WRONG_SECRET.encode(), sts.encode(), hashlib.sha256).hexdigest() == sent
    else:
        assert sts.startswith("POST&%2F&") and "Action%3DDescribeKeyPairs" in sts
        digest = hmac.new((WRONG_SECRET + "&").encode(), sts.encode(), hashlib.sha1).digest()
        assert base64.b64encode(digest).decode() == sent


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_aliyunsdkcore_relabels_wrong_secret_as_invalid_access_key_secret(
    live: LiveServer, method: str
) -> None:
    """aliyunsdkcore says InvalidAccessKeySecret only when our string to sign equals its own, byte for byte."""
    request = DescribeRegionsRequest()
    request.set_method(method)
    request.add_query_param("Extra", "a b*c~d/e+f&g=h%i\u00e9\u4e2d")
    client = acs_client(live, (ROOT_KEY_ID, WRONG_SECRET))
    error = expect_error(lambda: client.do_action_with_exception(request))
    assert_client_error(error, "InvalidAccessKeySecret", 400)
    assert (
        error.message
        == "The AccessKeySecret is incorrect. Please check your AccessKeyId and AccessKeySecret."
    )


def test_raw_wrong_signature_message_ends_with_the_string_to_sign(live: LiveServer) -> None:
    params = signed_v1("DescribeRegions", {"AcceptLanguage": "en-US", "Odd": "x y*z~/\u00e9"})
    params["Signature"] = base64.b64encode(b"\0" * 20).decode()
    fields = assert_error(v1_get(live, params), "SignatureDoesNotMatch", 400)
    assert fields["Message"].endswith(STS_MARKER + expected_v1_string_to_sign("GET", params))


def test_signature_of_get_does_not_verify_as_post(live: LiveServer) -> None:
    params = signed_v1("DescribeRegions", method="GET")
    response = http_request(live, "POST", "/?" + query_of(params))
    fields = assert_error(response, "SignatureDoesNotMatch", 400)
    assert server_string_to_sign(fields["Message"]) == expected_v1_string_to_sign("POST", params)
    assert v1_get(live, signed_v1("DescribeRegions")).status == 200  # a fresh GET signature verifies


# ---- AccessKeys --------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", CLIENTS)
def test_unknown_access_key_is_not_found(live: LiveServer, flavor: str) -> None:
    error = client_error(live, flavor, "DescribeRegions", key=("LTAInoSuchKey000000000", "whatever"))
    assert_client_error(error, "InvalidAccessKeyId.NotFound", 404)


def test_unknown_access_key_through_the_vpc_product_names_the_vpc_host(live: LiveServer) -> None:
    params = signed_v1("DescribeRegions", key=("LTAInoSuchKey000000000", "x"), version=VPC)
    fields = assert_error(v1_get(live, params), "InvalidAccessKeyId.NotFound", 404)
    assert fields["HostId"] == "vpc.aliyuncs.com"


def test_disabled_access_key_is_inactive(live: LiveServer) -> None:
    name = f"disabled-{uuid.uuid4().hex[:8]}"
    key = live.create_account(name)
    for flavor in CLIENTS:  # the key works before it is disabled
        assert regions_in(flavor, client_call(live, flavor, "DescribeRegions", key=key))
    live.nubes("admin", "key", "disable", "--account", name, key[0], *live.admin_store_args())
    for flavor in CLIENTS:
        assert_client_error(
            client_error(live, flavor, "DescribeRegions", key=key), "InvalidAccessKeyId.Inactive", 400
        )
    # A disabled key is refused before its signature is looked at.
    params = signed_v1("DescribeRegions", key=(key[0], WRONG_SECRET))
    assert_error(v1_get(live, params), "InvalidAccessKeyId.Inactive", 400)


# ---- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16), timedelta(days=-400)])
@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_timestamp_more_than_15_minutes_off_is_expired(
    live: LiveServer, flavor: str, skew: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: utc(skew)))
    error = client_error(live, flavor, "DescribeRegions")
    assert_client_error(error, "InvalidTimeStamp.Expired", 400)


def test_aliyunsdkcore_timestamp_more_than_15_minutes_off_is_expired(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: utc(timedelta(minutes=-20)))
    assert_client_error(client_error(live, ACS, "DescribeRegions"), "InvalidTimeStamp.Expired", 400)


@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_malformed_timestamp_is_format_error(
    live: LiveServer, flavor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: "Thu, 26 Nov 2026 05:12:55 GMT"))
    assert_client_error(client_error(live, flavor, "DescribeRegions"), "InvalidTimeStamp.Format", 400)


@pytest.mark.parametrize(
    ("skew", "code"),
    [
        (timedelta(minutes=-16), "InvalidTimeStamp.Expired"),
        (timedelta(minutes=16), "InvalidTimeStamp.Expired"),
        (timedelta(minutes=-14), None),
        (timedelta(minutes=14), None),
    ],
)
def test_raw_v1_timestamp_window_is_15_minutes(live: LiveServer, skew: timedelta, code: str | None) -> None:
    timestamp = utc(skew)
    response = v1_get(live, signed_v1("DescribeRegions", timestamp=timestamp))
    if code is None:
        assert response.status == 200, response.body
        assert response.json()["Regions"]["Region"]
    else:
        fields = assert_error(response, code, 400)
        assert repr(timestamp) in fields["Message"]  # names the timestamp it refused


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-01-01 12:00:00",
        "yesterday",
        "2024-01-01T12:00:00",
        "2024-13-01T12:00:00Z",
        "2024-01-01T12:00:00+99:00",
        "1700000000",
    ],
)
def test_raw_v1_malformed_timestamp_is_format_error(live: LiveServer, timestamp: str) -> None:
    fields = assert_error(
        v1_get(live, signed_v1("DescribeRegions", timestamp=timestamp)), "InvalidTimeStamp.Format", 400
    )
    assert repr(timestamp) in fields["Message"]


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [(utc(timedelta(hours=-1)), "InvalidTimeStamp.Expired"), ("not-a-date", "InvalidTimeStamp.Format")],
    ids=["an-hour-ago", "not-a-date"],  # the same on every xdist worker, whatever the clock says
)
def test_raw_v3_bad_x_acs_date(live: LiveServer, timestamp: str, code: str) -> None:
    headers = sign_v3("POST", live.endpoint, "DescribeRegions", ECS, {}, *ROOT, timestamp=timestamp)
    assert_error(http_request(live, "POST", "/", headers=headers), code, 400)


# ---- nonces --------------------------------------------------------------------------------


def test_replaying_the_exact_bytes_of_a_v1_request_is_signature_nonce_used(live: LiveServer) -> None:
    query = query_of(signed_v1("DescribeRegions"))
    raw = f"GET /?{query} HTTP/1.1\r\nHost: {live.endpoint}\r\nConnection: close\r\n\r\n".encode()
    first = send_bytes(live, raw)
    assert first.status == 200 and first.json()["Regions"]["Region"]
    assert_error(send_bytes(live, raw), "SignatureNonceUsed", 400)
    assert_error(send_bytes(live, raw), "SignatureNonceUsed", 400)


def test_replaying_the_exact_bytes_of_a_v3_request_is_signature_nonce_used(live: LiveServer) -> None:
    headers = sign_v3("POST", live.endpoint, "DescribeZones", ECS, {"RegionId": "cn-hangzhou"}, *ROOT)
    lines = ["POST /?RegionId=cn-hangzhou HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    raw = ("\r\n".join([*lines, "Content-Length: 0", "Connection: close"]) + "\r\n\r\n").encode()
    first = send_bytes(live, raw)
    assert first.status == 200 and first.json()["Zones"]["Zone"]
    assert_error(send_bytes(live, raw), "SignatureNonceUsed", 400)


@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_client_reusing_a_nonce_is_signature_nonce_used(
    live: LiveServer, flavor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = uuid.uuid4().hex
    monkeypatch.setattr(TeaUtils, "get_nonce", staticmethod(lambda: nonce))
    assert "cn-hangzhou" in regions_in(flavor, client_call(live, flavor, "DescribeRegions"))
    # A different action, a fresh signature: the nonce alone is what is refused.
    error = client_error(live, flavor, "DescribeZones", {"RegionId": "cn-hangzhou"})
    assert_client_error(error, "SignatureNonceUsed", 400)


def test_aliyunsdkcore_reusing_a_nonce_is_signature_nonce_used(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = uuid.uuid4().hex
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: nonce)
    assert "cn-hangzhou" in regions_in(ACS, client_call(live, ACS, "DescribeRegions"))
    assert_client_error(client_error(live, ACS, "DescribeRegions"), "SignatureNonceUsed", 400)


def test_nonces_are_per_access_key(live: LiveServer) -> None:
    other = live.create_account(f"nonce-{uuid.uuid4().hex[:8]}")
    nonce = uuid.uuid4().hex
    assert v1_get(live, signed_v1("DescribeRegions", nonce=nonce)).status == 200
    assert v1_get(live, signed_v1("DescribeRegions", key=other, nonce=nonce)).status == 200
    assert_error(
        v1_get(live, signed_v1("DescribeRegions", key=other, nonce=nonce)), "SignatureNonceUsed", 400
    )


def test_a_forged_request_does_not_burn_the_nonce(live: LiveServer) -> None:
    nonce = uuid.uuid4().hex
    forged = signed_v1("DescribeRegions", key=(ROOT_KEY_ID, WRONG_SECRET), nonce=nonce)
    assert_error(v1_get(live, forged), "SignatureDoesNotMatch", 400)
    assert v1_get(live, signed_v1("DescribeRegions", nonce=nonce)).status == 200


# ---- missing protocol parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Action", "Version", "Signature", "AccessKeyId", "SignatureNonce", "Timestamp", "SignatureMethod"],
)
def test_raw_missing_protocol_parameter(live: LiveServer, name: str) -> None:
    params = signed_v1("DescribeRegions")
    del params[name]
    assert_error(v1_get(live, params), "MissingParameter", 400, naming=name)


@pytest.mark.parametrize("name", ["Action", "Version"])
@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_empty_action_or_version_is_missing_parameter(live: LiveServer, flavor: str, name: str) -> None:
    action, version = ("", ECS) if name == "Action" else ("DescribeRegions", "")
    error = client_error(live, flavor, action, version=version)
    assert_client_error(error, "MissingParameter", 400, naming=name)


def test_tea_anonymous_call_is_missing_access_key_id(live: LiveServer) -> None:
    params = tea_models.Params(
        action="DescribeRegions",
        version=ECS,
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="Anonymous",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    client = tea_ecs(live)
    error = expect_error(
        lambda: client.call_api(params, tea_models.OpenApiRequest(query={}), RuntimeOptions())
    )
    assert_client_error(error, "MissingParameter", 400, naming="AccessKeyId")


@pytest.mark.parametrize("name", ["x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"])
def test_raw_v3_missing_signed_header_is_missing_parameter(live: LiveServer, name: str) -> None:
    headers = sign_v3("POST", live.endpoint, "DescribeRegions", ECS, {}, *ROOT)
    headers[name] = ""
    assert_error(http_request(live, "POST", "/", headers=headers), "MissingParameter", 400, naming=name)


# ---- unknown Action / Version --------------------------------------------------------------


@pytest.mark.parametrize("flavor", CLIENTS)
def test_unknown_action_is_not_found(live: LiveServer, flavor: str) -> None:
    error = client_error(live, flavor, "DescribeNothingAtAll")
    assert_client_error(error, "InvalidAction.NotFound", 404)
    assert "DescribeNothingAtAll" in error.message


@pytest.mark.parametrize("flavor", CLIENTS)
def test_unknown_version_is_invalid_version(live: LiveServer, flavor: str) -> None:
    error = client_error(live, flavor, "DescribeRegions", version="2099-01-01")
    assert_client_error(error, "InvalidVersion", 400)
    assert "2099-01-01" in error.message


def test_unknown_action_is_answered_before_authentication(live: LiveServer) -> None:
    response = v1_get(live, {"Action": "DescribeNothingAtAll", "Version": ECS})
    assert_error(response, "InvalidAction.NotFound", 404)


# ---- action parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_describe_zones_without_region_is_missing_parameter_region_id(
    live: LiveServer, flavor: str
) -> None:
    client = tea_client(live, flavor)
    error = expect_error(lambda: client.describe_zones(ecs_models.DescribeZonesRequest()))
    assert_client_error(error, "MissingParameter.RegionId", 400, naming="RegionId")


def test_raw_describe_zones_without_region_is_missing_parameter_region_id(live: LiveServer) -> None:
    assert_error(
        v1_get(live, signed_v1("DescribeZones")), "MissingParameter.RegionId", 400, naming="RegionId"
    )


TEA_INVALID: list[tuple[str, Callable[[Any], object]]] = [
    (
        "MaxResults",
        lambda c: c.describe_instance_types(ecs_models.DescribeInstanceTypesRequest(max_results=0)),
    ),
    (
        "MaxResults",
        lambda c: c.describe_instance_types(ecs_models.DescribeInstanceTypesRequest(max_results=1601)),
    ),
    (
        "MaxResults",
        lambda c: c.describe_instance_types(ecs_models.DescribeInstanceTypesRequest(max_results="abc")),
    ),
    (
        "Verbose",
        lambda c: c.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-hangzhou", verbose="maybe")),
    ),
    ("AcceptLanguage", lambda c: c.describe_regions(ecs_models.DescribeRegionsRequest(accept_language="xx"))),
]


@pytest.mark.parametrize(
    ("name", "call"),
    TEA_INVALID,
    ids=["MaxResults=0", "MaxResults=1601", "MaxResults=abc", "Verbose=maybe", "AcceptLanguage=xx"],
)
@pytest.mark.parametrize("flavor", [TEA_V3, TEA_V2])
def test_tea_invalid_parameter(
    live: LiveServer, flavor: str, name: str, call: Callable[[Any], object]
) -> None:
    client = tea_client(live, flavor)
    assert_client_error(expect_error(lambda: call(client)), "InvalidParameter", 400, naming=name)


@pytest.mark.parametrize(
    ("action", "name", "value"),
    [
        ("DescribeInstanceTypes", "MaxResults", "0"),
        ("DescribeInstanceTypes", "MaxResults", "abc"),
        ("DescribeZones", "Verbose", "maybe"),
        ("DescribeRegions", "AcceptLanguage", "xx"),
    ],
)
def test_aliyunsdkcore_invalid_parameter(live: LiveServer, action: str, name: str, value: str) -> None:
    error = client_error(live, ACS, action, {name: value})
    assert_client_error(error, "InvalidParameter", 400, naming=name)
    assert repr(value) in error.message or value in error.message


@pytest.mark.parametrize("flavor", CLIENTS)
def test_unknown_region_is_not_found(live: LiveServer, flavor: str) -> None:
    # aliyunsdkcore sends its client region as RegionId; the Tea clients send the request's.
    error = client_error(live, flavor, "DescribeZones", {"RegionId": "xx-nowhere-1"}, region="xx-nowhere-1")
    assert_client_error(error, "InvalidRegionId.NotFound", 404)
    assert "xx-nowhere-1" in error.message


# ---- throttling ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server allowing 1 request per second per account and action, bursts of 2."""
    server = start_server(
        tmp_path_factory.mktemp("throttled"),
        None,
        "sqlite",
        ["--throttle-rate", "1", "--throttle-burst", "2"],
    )
    yield server
    stop_server(server)


def first_throttled(call: Callable[[], object], limit: int = 20) -> BaseException:
    """Call until the server throttles; the burst is 2, so that is the third call unless time refilled it."""
    for _ in range(limit):
        try:
            call()
        except (AlibabaCloudException, AcsServerException) as error:
            refused: BaseException = error
            return refused
    raise AssertionError(f"{limit} calls in a row were not throttled")


def poll_until_admitted(call: Callable[[], object], wait: float, deadline_s: float = 10.0) -> None:
    """Bounded poll: the call succeeds again once the advertised wait has passed."""
    deadline = time.monotonic() + deadline_s
    while True:
        time.sleep(wait)
        try:
            call()
            return
        except ThrottlingException:
            if time.monotonic() > deadline:
                raise


def test_tea_throttled_raises_throttling_exception_with_retry_after(throttled: LiveServer) -> None:
    client = tea_ecs(throttled)

    def call() -> Any:
        return client.describe_regions(ecs_models.DescribeRegionsRequest())

    error = first_throttled(call)
    assert isinstance(error, ThrottlingException), error
    assert (error.code, error.status_code, error.retry_after) == ("Throttling", 400, 1)
    assert error.data["Code"] == "Throttling" and error.data["RequestId"] == error.request_id
    # Throttling is per action: another action of the same account still passes.
    assert client.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-hangzhou")).body.zones.zone
    poll_until_admitted(call, error.retry_after)


def test_throttling_is_per_account(throttled: LiveServer) -> None:
    def action(key: Key) -> Any:
        request = ecs_models.DescribeInstanceTypeFamiliesRequest(region_id="cn-hangzhou")
        return tea_ecs(throttled, key).describe_instance_type_families(request)

    assert isinstance(first_throttled(lambda: action(ROOT)), ThrottlingException)
    other = throttled.create_account(f"throttle-{uuid.uuid4().hex[:8]}")
    assert action(other).body.instance_type_families.instance_type_family


def test_aliyunsdkcore_throttled_is_server_exception_throttling(throttled: LiveServer) -> None:
    error = first_throttled(
        lambda: acs_call(throttled, "DescribeAvailableResource", {"DestinationResource": "Zone"})
    )
    assert isinstance(error, AcsServerException), error
    assert (error.get_error_code(), error.get_http_status()) == ("Throttling", 400)


def test_raw_throttled_response_carries_x_acs_retry_after(throttled: LiveServer) -> None:
    responses = [v1_get(throttled, signed_v1("DescribeZones", {"RegionId": "cn-hangzhou"})) for _ in range(4)]
    refused = [r for r in responses if r.status != 200]
    assert refused, [r.status for r in responses]
    fields = assert_error(refused[0], "Throttling", 400)
    assert refused[0].headers["x-acs-retry-after"] == "1", refused[0].headers
    assert "x-acs-retry-after" not in responses[0].headers
    assert fields["Message"] == "Request was denied due to request throttling."


# ---- error body formats ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["XML", "xml"])
def test_error_is_xml_with_format_xml(live: LiveServer, fmt: str) -> None:
    params = signed_v1("DescribeZones", {"Format": fmt, "RegionId": "xx-nowhere-1"})
    response = v1_get(live, params)
    assert response.status == 404
    assert response.content_type == XML_TYPE  # exactly: the Tea SDKs parse an XML error only with this
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Error>')
    root = ET.fromstring(response.body)
    assert root.tag == "Error"
    assert [child.tag for child in root] == list(ERROR_FIELDS)
    fields = {child.tag: child.text for child in root}
    assert fields["Code"] == "InvalidRegionId.NotFound" and fields["HostId"] == "ecs.aliyuncs.com"
    assert fields["RequestId"] and fields["Message"]
    assert fields["Recommend"] == "https://api.aliyun.com/troubleshoot?q=InvalidRegionId.NotFound"


@pytest.mark.parametrize("fmt", [None, "JSON", "json", "yaml"])
def test_error_is_json_otherwise(live: LiveServer, fmt: str | None) -> None:
    params = {"Action": "DescribeZones", "Version": ECS, "RegionId": "xx-nowhere-1"}
    if fmt is not None:
        params["Format"] = fmt
    response = v1_get(live, sign_v1("GET", params, *ROOT))
    assert response.status == 404 and response.content_type == JSON_TYPE
    doc = response.json()
    assert list(doc) == list(ERROR_FIELDS)
    assert doc["Code"] == "InvalidRegionId.NotFound" and doc["HostId"] == "ecs.aliyuncs.com"
    assert doc["Recommend"] == "https://api.aliyun.com/troubleshoot?q=InvalidRegionId.NotFound"


def test_unauthenticated_errors_honour_format_xml(live: LiveServer) -> None:
    response = v1_get(live, {"Action": "DescribeRegions", "Version": VPC, "Format": "XML"})
    fields = assert_error(response, "MissingParameter", 400, naming="AccessKeyId")
    assert response.content_type == XML_TYPE and fields["HostId"] == "vpc.aliyuncs.com"


def test_tea_v3_reads_an_xml_error(live: LiveServer) -> None:
    error = expect_error(
        lambda: tea_call(live, TEA_V3, "DescribeZones", {"RegionId": "xx-nowhere-1", "Format": "XML"})
    )
    assert_client_error(error, "InvalidRegionId.NotFound", 404)


def test_request_ids_are_unique(live: LiveServer) -> None:
    ids = {v1_get(live, {"Action": "Nope", "Version": ECS}).error_fields()["RequestId"] for _ in range(5)}
    assert len(ids) == 5


# ---- v3 body hash, malformed Authorization -------------------------------------------------


def test_raw_v3_body_must_match_x_acs_content_sha256(live: LiveServer) -> None:
    body = b"RegionId=cn-hangzhou"
    form = {"content-type": "application/x-www-form-urlencoded"}
    headers = sign_v3("POST", live.endpoint, "DescribeZones", ECS, {}, *ROOT, body=body)
    ok = http_request(live, "POST", "/", body, {**headers, **form})
    assert ok.status == 200 and ok.json()["Zones"]["Zone"]  # the form body carried RegionId

    headers = sign_v3("POST", live.endpoint, "DescribeZones", ECS, {}, *ROOT, body=body)
    tampered = http_request(live, "POST", "/", b"RegionId=cn-shanghai", {**headers, **form})
    fields = assert_error(tampered, "SignatureDoesNotMatch", 400)
    assert "x-acs-content-sha256" in fields["Message"]


def test_raw_v3_tampered_query_is_signature_does_not_match(live: LiveServer) -> None:
    headers = sign_v3("POST", live.endpoint, "DescribeZones", ECS, {"RegionId": "cn-hangzhou"}, *ROOT)
    response = http_request(live, "POST", "/?RegionId=cn-shanghai", headers=headers)
    fields = assert_error(response, "SignatureDoesNotMatch", 400)
    assert server_string_to_sign(fields["Message"]).startswith("ACS3-HMAC-SHA256\n")


@pytest.mark.parametrize(
    "authorization",
    [
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256 ",
        "ACS3-HMAC-SHA256 garbage",
        "ACS3-HMAC-SHA256 Credential=LTAItestroot0000000001",
        "ACS3-HMAC-SHA256 Credential=LTAItestroot0000000001,SignedHeaders=host",
        "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=00",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=,Signature=00",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=00,junk",
        "ACS3-HMAC-SHA256XYZ Credential=a,SignedHeaders=host,Signature=00",
    ],
)
def test_malformed_authorization_is_incomplete_signature(live: LiveServer, authorization: str) -> None:
    headers = sign_v3("POST", live.endpoint, "DescribeRegions", ECS, {}, *ROOT)
    headers["authorization"] = authorization
    fields = assert_error(http_request(live, "POST", "/", headers=headers), "IncompleteSignature", 400)
    assert "ACS3-HMAC-SHA256 Credential=" in fields["Message"]  # tells the expected form


# ---- pop-core style: everything in a form body ---------------------------------------------


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_pop_core_form_post_succeeds(live: LiveServer) -> None:
    params = signed_v1("DescribeRegions", {"AcceptLanguage": "en-US"}, method="POST")
    response = http_request(live, "POST", "/", query_of(params).encode(), FORM)
    assert response.status == 200, response.body
    regions = {r["RegionId"]: r for r in response.json()["Regions"]["Region"]}
    assert regions["cn-hangzhou"]["LocalName"] == "China (Hangzhou)"  # AcceptLanguage came from the body


def test_pop_core_form_post_with_charset_and_plus_spaces(live: LiveServer) -> None:
    params = signed_v1(
        "DescribeKeyPairs", {"RegionId": "cn-hangzhou", "KeyPairName": "no such pair"}, method="POST"
    )
    body = urlencode(params).encode()  # '+' for spaces, as HTML forms do
    assert b"no+such+pair" in body
    response = http_request(
        live, "POST", "/", body, {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
    )
    assert response.status == 200, response.body
    assert response.json()["TotalCount"] == 0


def test_pop_core_form_post_split_between_query_and_body(live: LiveServer) -> None:
    params = signed_v1("DescribeZones", {"RegionId": "cn-hangzhou"}, method="POST")
    in_query = {k: params[k] for k in ("Action", "Version", "Signature")}
    in_body = {k: v for k, v in params.items() if k not in in_query}
    response = http_request(live, "POST", "/?" + query_of(in_query), query_of(in_body).encode(), FORM)
    assert response.status == 200, response.body
    assert response.json()["Zones"]["Zone"]


def test_pop_core_form_post_with_wrong_signature(live: LiveServer) -> None:
    params = signed_v1(
        "DescribeRegions", {"AcceptLanguage": "en-US"}, method="POST", key=(ROOT_KEY_ID, WRONG_SECRET)
    )
    response = http_request(live, "POST", "/", query_of(params).encode(), FORM)
    fields = assert_error(response, "SignatureDoesNotMatch", 400)
    assert fields["Message"].endswith(STS_MARKER + expected_v1_string_to_sign("POST", params))


def test_form_body_without_form_content_type_is_ignored(live: LiveServer) -> None:
    params = signed_v1("DescribeRegions", method="POST")
    response = http_request(live, "POST", "/", query_of(params).encode(), {"content-type": "text/plain"})
    assert_error(response, "MissingParameter", 400, naming="Version")


# ---- HTTP methods --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_unsupported_http_method(live: LiveServer, method: str) -> None:
    response = http_request(live, method, "/?" + query_of(signed_v1("DescribeRegions", method=method)))
    assert_error(response, "UnsupportedHTTPMethod", 405)


@pytest.mark.parametrize("case", ["PUT method", "more than 5000 parameters"])
def test_format_xml_is_honoured_for_early_refusals(live: LiveServer, case: str) -> None:
    """Refused before its parameters are parsed, a Format=XML request still gets an XML error."""
    if case == "PUT method":
        response = http_request(live, "PUT", "/?" + query_of(signed_v1("DescribeRegions", {"Format": "XML"})))
        assert_error(response, "UnsupportedHTTPMethod", 405)
    else:
        response = http_request(live, "GET", "/?Format=XML&" + "&".join(f"p{i}=1" for i in range(5001)))
        assert_error(response, "InvalidParameter", 400)
    assert response.content_type == XML_TYPE, response.body[:200]


@pytest.mark.parametrize("case", ["more than 5000 parameters", "over 4 MB"])
def test_format_xml_deep_in_a_large_post_body_is_honoured(live: LiveServer, case: str) -> None:
    """Format=XML after the first 64 KB of a form body, in a request refused before parsing."""
    filler = (
        "&".join(f"param{i:06d}=1" for i in range(5001))
        if case == "more than 5000 parameters"
        else "p=" + "x" * (4 * 1024 * 1024 + 100_000)
    )
    assert len(filler) > 65536
    response = http_request(live, "POST", "/", f"{filler}&Format=XML".encode(), FORM)
    assert_error(
        response,
        "InvalidParameter" if case.startswith("more") else "RequestEntityTooLarge",
        400 if case.startswith("more") else 413,
    )
    assert response.content_type == XML_TYPE, response.body[:200]
