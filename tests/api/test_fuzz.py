"""Done when: random and hostile requests — methods, paths, query strings, headers, bodies, and
validly signed calls of every action the server knows with random parameter values — never get a
5xx, never hang, and always get a parseable ECS body (JSON, or XML with Format=XML) carrying a
RequestId; and the server logs no traceback.

Bugs this fuzzing found are pinned by the `test_bug_*` tests at the end (xfail, strict). While a
bug stands, the fuzz tests tolerate exactly its failure — the same trigger in the request AND the
same exception in the server log — so that they keep catching everything else. Fixing a bug turns
its `test_bug_*` into an XPASS failure: then drop that test's xfail marker (it stays as a
regression test) and its KnownBug entry."""

from __future__ import annotations

import http.client
import json
import re
import string
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nubes.actions import all_tables
from nubes.api.params import Param
from nubes.api.registry import ActionSpec
from nubes.api.signing import sign_v1, sign_v3, utc_timestamp
from nubes.catalog.model import load_catalog

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer

TIMEOUT = 10.0
JSON_TYPE = "application/json;charset=utf-8"
XML_TYPE = "text/xml;charset=utf-8"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 5000  # the server's documented limit on parameters per query string / body
VERSIONS = {"ecs": "2014-05-26", "vpc": "2016-04-28"}
# Resource ids created before the fuzz starts (see `seeded_ids`): name -> ids, e.g. "VpcId" -> ["vpc-..."].
Pools = dict[str, list[str]]
PROTOCOL_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
        "SignatureType",
    }
)
# Codes a correctly signed request for a known action must never get.
AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidTimeStamp.Expired",
        "InvalidTimeStamp.Format",
        "SignatureNonceUsed",
        "InvalidAction.NotFound",
        "InvalidVersion",
        "UnsupportedHTTPMethod",
    }
)
PROTOCOL_MISSING = re.compile(
    r'^The input parameter "(Action|Version|AccessKeyId|Signature\w*|Timestamp|x-acs-[\w-]+)"'
)


def refused_by_protocol(fields: dict[str, str]) -> bool:
    """An authentication or protocol refusal (not a refusal of the action's own parameters)."""
    code = fields.get("Code", "")
    return code in AUTH_CODES or (
        code == "MissingParameter" and bool(PROTOCOL_MISSING.match(fields.get("Message", "")))
    )


ACTIONS: list[tuple[str, ActionSpec]] = sorted(
    ((VERSIONS[table.product], spec) for table in all_tables() for spec in table.specs),
    key=lambda item: (item[0], item[1].name),
)
CATALOG = load_catalog()
REGIONS = [r.region_id for r in CATALOG.regions]
ZONES = [z.zone_id for r in CATALOG.regions for z in r.zones]
TYPES = [t.type_id for t in CATALOG.all_types()][:40]
FAMILIES = [f.family_id for f in CATALOG.families]
PUBLIC_KEY = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


# ---- sending and checking ------------------------------------------------------------------


@dataclass
class Sent:
    """One fuzz request, and what the server should have seen of it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    backend: str
    action: str = ""  # for signed requests
    declared: frozenset[str] = frozenset()  # the action's parameter names, for signed requests
    params: list[tuple[str, str]] = field(default_factory=list)  # decoded query (+ form body) pairs
    expect_xml: bool | None = None  # None: the format cannot be known (refused before parsing)
    within_limits: bool = True  # at most MAX_FIELDS parameters in the query and in the body

    def __repr__(self) -> str:
        return f"Sent({self.describe()!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints a failing example
        printer.text(repr(self))

    def describe(self) -> str:
        body = self.body[:300]
        return f"{self.method} {self.target[:600]}\nheaders={self.headers}\nbody={body!r}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(live: LiveServer, sent: Sent) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=TIMEOUT)
    try:
        conn.request(sent.method, sent.target, body=sent.body or None, headers=sent.headers)
        response = conn.getresponse()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    except TimeoutError:
        pytest.fail(f"no answer within {TIMEOUT} s (the server hung) for:\n{sent.describe()}")
    except (ConnectionError, http.client.HTTPException) as exc:
        pytest.fail(f"connection failed ({exc!r}) for:\n{sent.describe()}")
    finally:
        conn.close()


def decoded_params(query: str, body: bytes, content_type: str | None) -> tuple[list[tuple[str, str]], bool]:
    """The pairs the server decodes, and whether both parts stay within MAX_FIELDS."""
    pairs: list[tuple[str, str]] = []
    within = True
    parts = [query]
    if body and (content_type or "").lower().startswith(FORM_TYPE):
        parts.append(body.decode("utf-8", errors="replace"))
    for text in parts:
        try:
            pairs += parse_qsl(text, keep_blank_values=True, errors="replace", max_num_fields=MAX_FIELDS)
        except ValueError:
            within = False
    return pairs, within


def wants_xml(method: str, pairs: list[tuple[str, str]], within: bool) -> bool | None:
    if method not in ("GET", "POST") or not within:
        # Refused before the parameters are parsed: the server sniffs Format (best effort, e.g. with two
        # Format parameters); test_protocol_errors.py::test_format_xml_is_honoured_for_early_refusals pins it.
        return None
    return dict(pairs).get("Format", "").upper() == "XML"


def parse_body(answer: Answer) -> tuple[str, dict[str, str]]:
    """(root name, top-level fields) of a JSON or XML body; raises ValueError when unparseable."""
    content_type = answer.headers.get("content-type", "")
    if content_type == XML_TYPE:
        try:
            root = ET.fromstring(answer.body)
        except ET.ParseError as exc:
            raise ValueError(f"unparseable XML: {exc}") from None
        return root.tag, {child.tag: child.text or "" for child in root if len(child) == 0}
    if content_type == JSON_TYPE:
        doc = json.loads(answer.body)
        if not isinstance(doc, dict):
            raise ValueError("the JSON body is not an object")
        return "", {k: str(v) for k, v in doc.items() if isinstance(v, (str, int, float))}
    raise ValueError(f"unexpected content-type {content_type!r}")


# ---- known bugs (see the test_bug_* tests) -------------------------------------------------------


@dataclass(frozen=True)
class KnownBug:
    pinned_by: str  # the xfail test that reproduces it
    exception: tuple[str, ...]  # one of these is in the server's traceback for the request (() = any)
    trigger: Callable[[Sent], bool]


KNOWN_500_BUGS: list[KnownBug] = []


# A log record starts with nubes' timestamp or with uvicorn's padded level ("ERROR:    Exception in ASGI ...").
RECORD_START = re.compile(r"^(\d{4}-\d{2}-\d{2} \d|INFO:     |WARNING:  |ERROR:    |DEBUG:    |CRITICAL: )")


def log_records(log: str) -> list[str]:
    """The log split into records: a first line and whatever (tracebacks) follows it."""
    records: list[str] = []
    for line in log.splitlines():
        if RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return records


def traceback_of(log: str, request_id: str) -> str:
    """The server's traceback for one request id ('' if none)."""
    marker = f"(request {request_id})"
    for record in log_records(log):
        if marker in record.split("\n", 1)[0]:
            return record
    return ""


def known_500(live: LiveServer, sent: Sent, request_id: str) -> KnownBug | None:
    if not request_id:
        return None
    trace = traceback_of(live.log(), request_id)
    for bug in KNOWN_500_BUGS:
        if (
            bug.trigger(sent)
            and trace
            and (not bug.exception or any(text in trace for text in bug.exception))
        ):
            return bug
    return None


@dataclass
class Tolerated:
    """The requests whose 5xx (and traceback) a known bug explains."""

    request_ids: set[str] = field(default_factory=set)


def check(live: LiveServer, sent: Sent, answer: Answer, tolerated: Tolerated) -> tuple[str, dict[str, str]]:
    """Assert the fuzz properties of one answer; return its (root, fields)."""
    context = f"status {answer.status}, body {answer.body[:400]!r}\nfor {sent.describe()}"
    if sent.target.split("?", 1)[0] == "/healthz":
        assert answer.status == 200, context
        return "", {}
    if sent.method == "HEAD":  # no body comes back; the status and content-type still must be right
        assert answer.status < 500, context
        assert answer.headers.get("content-type") in (JSON_TYPE, XML_TYPE), context
        return "", {}
    try:
        root, fields = parse_body(answer)
    except ValueError as exc:
        pytest.fail(f"{exc}: {context}")
    request_id = str(fields.get("RequestId", ""))
    if answer.status >= 500:
        bug = known_500(live, sent, request_id)
        if bug is not None:
            tolerated.request_ids.add(request_id)
            return root, fields
        pytest.fail(f"5xx answer: {context}\n{traceback_of(live.log(), request_id)}")
    assert request_id, f"no RequestId: {context}"
    if sent.expect_xml is not None:
        expected = XML_TYPE if sent.expect_xml else JSON_TYPE
        assert answer.headers.get("content-type") == expected, f"wrong format: {context}"
    if answer.status >= 400:
        assert fields.get("Code") and fields.get("Message"), context
        assert fields.get("HostId") in ("ecs.aliyuncs.com", "vpc.aliyuncs.com"), context
    return root, fields


def assert_no_unexplained_traceback(live: LiveServer, log_start: int, tolerated: Tolerated) -> None:
    unexplained = []
    for record in log_records(live.log()[log_start:]):
        if "Traceback" not in record:
            continue
        match = re.search(r"\(request ([0-9A-F-]+)\)", record.split("\n", 1)[0])
        if match is None or match.group(1) not in tolerated.request_ids:
            unexplained.append(record[:4000])
    assert not unexplained, f"the server logged {len(unexplained)} tracebacks:\n\n" + "\n\n".join(
        unexplained[:3]
    )


@pytest.fixture
def log_watch(live: LiveServer) -> Iterator[Tolerated]:
    """Yields the tolerated-failure record; afterwards, no traceback may be unexplained."""
    start = len(live.log())
    tolerated = Tolerated()
    yield tolerated
    assert_no_unexplained_traceback(live, start, tolerated)


@pytest.fixture(scope="module")
def fuzz_key(live: LiveServer) -> tuple[str, str]:
    """The fuzz's own account: what it creates (key pairs, VPCs, ...) stays out of the root account's way."""
    return live.create_account(f"fuzz-{uuid.uuid4().hex[:8]}")


def call_signed(
    live: LiveServer, key: tuple[str, str], version: str, action: str, params: dict[str, str]
) -> dict[str, Any]:
    signed = sign_v1("POST", {"Action": action, "Version": version, **params}, *key)
    answer = send(live, Sent("POST", "/?" + urlencode(signed, quote_via=quote), {}, b"", live.backend))
    doc = json.loads(answer.body) if answer.headers.get("content-type") == JSON_TYPE else {}
    return doc if answer.status == 200 and isinstance(doc, dict) else {}


def collect_ids(node: Any, pools: Pools) -> None:
    if isinstance(node, dict):
        for name, value in node.items():
            wanted = name.endswith("Id") and name not in ("RequestId", "RegionId", "ZoneId")
            if wanted and isinstance(value, str) and value and value not in pools.setdefault(name, []):
                pools[name].append(value)
            collect_ids(value, pools)
    elif isinstance(node, list):
        for item in node:
            collect_ids(item, pools)


@pytest.fixture(scope="module")
def seeded_ids(live: LiveServer, fuzz_key: tuple[str, str]) -> Pools:
    """Real resource ids for the fuzz to use, so that it gets past "not found" into the handlers.

    Best effort: whichever of these calls the server supports adds the ids its answer names."""
    pools: Pools = {}
    ecs, vpc = VERSIONS["ecs"], VERSIONS["vpc"]
    region = {"RegionId": "cn-hangzhou"}

    def create(version: str, action: str, params: dict[str, str]) -> None:
        collect_ids(call_signed(live, fuzz_key, version, action, {**region, **params}), pools)

    def wait_available(action: str, params: dict[str, str], deadline_s: float = 15.0) -> None:
        """Bounded poll until the resource reports Status=Available (gives up quietly)."""
        deadline = time.monotonic() + deadline_s
        while call_signed(live, fuzz_key, vpc, action, {**region, **params}).get("Status") != "Available":
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)

    create(vpc, "CreateVpc", {"CidrBlock": "10.0.0.0/8"})
    if vpc_ids := pools.get("VpcId"):
        wait_available("DescribeVpcAttribute", {"VpcId": vpc_ids[0]})
        zone = NAMED_VALUES["ZoneId"][0]
        create(vpc, "CreateVSwitch", {"VpcId": vpc_ids[0], "ZoneId": zone, "CidrBlock": "10.1.0.0/24"})
        create(ecs, "CreateSecurityGroup", {"VpcId": vpc_ids[0]})
        create(vpc, "DescribeVpcs", {})
    if vswitch_ids := pools.get("VSwitchId"):
        wait_available("DescribeVSwitchAttributes", {"VSwitchId": vswitch_ids[0]})
        group = pools.get("SecurityGroupId", [""])[0]
        create(ecs, "CreateNetworkInterface", {"VSwitchId": vswitch_ids[0], "SecurityGroupId": group})
    create(ecs, "CreateKeyPair", {"KeyPairName": "fuzz-seed"})
    pools.setdefault("KeyPairName", []).append("fuzz-seed")
    return pools


# ---- strategies: raw text ------------------------------------------------------------------

URL_CHARS = string.ascii_letters + string.digits + "-._~!$'()*,;:@/[]"
PERCENT_JUNK = [
    "%",
    "%z",
    "%zz",
    "%e9",
    "%ff%fe",
    "%00",
    "%C3",
    "%C3%28",
    "%E2%82",
    "%u1234",
    "%%",
    "%2",
    "%F0%9F%92%A9",
    "%ED%A0%80",
    "%0D%0A",
    "%3C%3E%26",
]
JUNK_VALUES = [
    "",
    " ",
    "null",
    "None",
    "true",
    "[]",
    "{}",
    "%",
    "\x00",
    "a\x00b",
    "\x01",
    "\u202e",
    "'\"<>&",
    "*",
    "9" * 30,
    "-1",
    "0",
    "1e309",
    "NaN",
    "Infinity",
    '[1,{"a":2}]',
    "not json",
    "[" * 40,
    "cn-hangzhou",
    "\ufeff",
    "\ud7ff\ue000",
    "]]>",
    "<![CDATA[x]]>",
    "&amp;",
    "\t\n\r",
    "a" * 3000,
]

hostile_text = st.text(max_size=40)
junk_text = st.one_of(hostile_text, st.sampled_from(JUNK_VALUES))
raw_token = st.lists(
    st.one_of(
        st.text(alphabet=URL_CHARS + "%+", max_size=12),
        st.sampled_from(PERCENT_JUNK),
        hostile_text.map(lambda s: quote(s, safe="")),
    ),
    max_size=4,
).map("".join)
SESSION_TIMESTAMP = utc_timestamp()
PROTOCOL_VALUES: dict[str, st.SearchStrategy[str]] = {
    "Action": st.one_of(st.sampled_from([spec.name for _, spec in ACTIONS]), junk_text),
    "Version": st.one_of(st.sampled_from(list(VERSIONS.values())), junk_text),
    "Format": st.sampled_from(["XML", "xml", "JSON", "json", "", "yaml", "XmL"]),
    "AccessKeyId": st.one_of(st.just(ROOT_KEY_ID), junk_text),
    "Signature": junk_text,
    "SignatureMethod": st.sampled_from(["HMAC-SHA1", "HMAC-SHA256", ""]),
    "SignatureVersion": st.sampled_from(["1.0", "2.0", ""]),
    "SignatureNonce": junk_text,
    "Timestamp": st.one_of(
        st.just(SESSION_TIMESTAMP),  # valid for 15 minutes: such requests get as far as the signature check
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.sampled_from(["2024-01-01T00:00:00Z", "yesterday", "0001-01-01T00:00:00+23:59", "T" * 41]),
        junk_text,
    ),
}
raw_pair = st.one_of(
    st.tuples(raw_token, raw_token).map(lambda kv: f"{kv[0]}={kv[1]}"),
    raw_token,
    st.sampled_from(list(PROTOCOL_VALUES)).flatmap(
        lambda name: PROTOCOL_VALUES[name].map(lambda v: f"{name}={quote(v, safe='')}")
    ),
)


@st.composite
def raw_query(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(raw_pair, max_size=14))
    shape = draw(st.sampled_from(["plain", "plain", "plain", "bulk", "huge-name"]))
    if shape == "bulk":  # thousands of parameters, around the server's limit
        count = draw(st.one_of(st.integers(1000, 4990), st.integers(MAX_FIELDS - 3, MAX_FIELDS + 3)))
        pairs += ["a=1"] * count
    elif shape == "huge-name":
        pairs.append("N" * draw(st.integers(1000, 20000)) + "=" + draw(raw_token))
    return "&".join(pairs)


HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
header_value = st.text(alphabet=HEADER_CHARS, max_size=60)
X_ACS_NAMES = [
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-security-token",
    "x-acs-accesskey-id",
    "x-acs-signature-type",
    "x-acs-credentials-provider",
]
x_acs_header = st.tuples(
    st.one_of(st.sampled_from(X_ACS_NAMES), st.from_regex(r"x-acs-[a-z0-9-]{1,20}", fullmatch=True)),
    st.one_of(header_value, st.sampled_from([spec.name for _, spec in ACTIONS] + list(VERSIONS.values()))),
)
authorization = st.one_of(
    header_value,
    st.builds(
        lambda head, cred, signed, sig, tail: (
            f"{head}Credential={cred},SignedHeaders={signed},Signature={sig}{tail}"
        ),
        st.sampled_from(
            ["ACS3-HMAC-SHA256 ", "ACS3-HMAC-SHA256", "ACS3-HMAC-SHA256X ", "acs3-hmac-sha256 ", ""]
        ),
        st.one_of(st.just(ROOT_KEY_ID), st.text(alphabet=HEADER_CHARS, max_size=20)),
        st.one_of(
            st.sampled_from(["host", "host;x-acs-date", ";;", "", "authorization", "x-acs-action;host"]),
            st.text(alphabet=HEADER_CHARS, max_size=20),
        ),
        st.text(alphabet=string.hexdigits + ",= ", max_size=70),
        st.sampled_from(["", ",", ",junk", ",Extra=1", " "]),
    ),
)
CONTENT_TYPES = [
    FORM_TYPE,
    FORM_TYPE + "; charset=UTF-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "text/xml",
]


@st.composite
def raw_request(draw: st.DrawFn, backend: str) -> Sent:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]))
    path = draw(
        st.one_of(st.just("/"), st.text(alphabet=URL_CHARS + "%", max_size=30).map(lambda p: "/" + p))
    )
    query = draw(raw_query())
    headers = dict(draw(st.lists(x_acs_header, max_size=4)))
    if draw(st.booleans()):
        headers["authorization"] = draw(authorization)
    content_type = draw(st.one_of(st.none(), st.sampled_from(CONTENT_TYPES)))
    if content_type:
        headers["content-type"] = content_type
    body = draw(st.one_of(st.just(b""), st.binary(max_size=400), raw_query().map(str.encode)))
    pairs, within = decoded_params(query, body, content_type)
    return Sent(
        method,
        f"{path}?{query}" if query else path,
        headers,
        body,
        backend,
        params=pairs,
        expect_xml=wants_xml(method, pairs, within),
    )


# ---- strategies: parameters of the known actions ---------------------------------------------

INDEXES = st.one_of(
    st.integers(1, 12).map(str),
    st.sampled_from(
        ["0", "-1", "00", "01", "999999", "1000000", "999999999", "", "x", " 1", "\u0663", "+1", "1e2"]
    ),
)
json_array_text = st.one_of(
    st.lists(
        st.one_of(
            st.text(max_size=20),
            st.integers(),
            st.booleans(),
            st.none(),
            st.floats(),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            st.lists(st.integers(), max_size=2),
        ),
        max_size=6,
    ).map(json.dumps),
    st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_.:-]{1,20}", fullmatch=True), max_size=4).map(json.dumps),
    st.sampled_from(
        [
            '[1,{"a":2}]',
            "not json",
            "[",
            "]",
            "[]",
            '[""]',
            "null",
            '"x"',
            "{}",
            '["a",]',
            '["\\ud800"]',
            '["\\u0000"]',
            '["\\u0001"]',
            "[" * 600 + "]" * 600,
            "[" * 50 + "]" * 50,
        ]
    ),
)
INTEGER_JUNK = [
    "abc",
    "1.5",
    "1e3",
    " 7",
    "+3",
    "-0",
    "\u0663",
    "0x10",
    "9" * 19,
    "9" * 20,
    "-" + "9" * 19,
    "١٢",
]
NUMBER_JUNK = ["1e309", "-1e309", "NaN", "inf", "1_000", "0x1p3", "1e-400", "", "--1"]
BOOLEAN_JUNK = ["maybe", "1", "0", "yes", "", "tRUE"]
CIDRS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "10.1.0.0/24", "10.1.1.0/24", "192.168.1.0/24"]
CIDR_JUNK = [
    "10.0.0.0/33",
    "10.0.0.1/8",
    "300.0.0.0/8",
    "10.0.0.0",
    "::/0",
    "0.0.0.0/0",
    "10.0.0.0/-1",
    "a/b",
]
NAMED_VALUES: dict[str, list[str]] = {
    "RegionId": ["cn-hangzhou"] * 6 + REGIONS,
    "ZoneId": [z.zone_id for r in CATALOG.regions if r.region_id == "cn-hangzhou" for z in r.zones] * 3
    + ZONES,
    "InstanceType": TYPES,
    "InstanceTypeFamily": FAMILIES,
    "PublicKeyBody": [PUBLIC_KEY, PUBLIC_KEY + " comment"],
    "CidrBlock": CIDRS,
    "DestinationCidrBlock": CIDRS,
}
NAMED_JUNK: dict[str, list[str]] = {
    "RegionId": ["xx-nowhere-1", "CN-HANGZHOU", "cn-hangzhou "],
    "ZoneId": ["xx-nowhere-1a"],
    "PublicKeyBody": ["ssh-rsa AAAA", "ssh-ed25519 !!!!", PUBLIC_KEY.replace("AAAA", "BBBB", 1)],
    "CidrBlock": CIDR_JUNK,
    "DestinationCidrBlock": CIDR_JUNK,
}
clean_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_.:-]{1,30}", fullmatch=True)


def known_values(p: Param, pools: Pools) -> list[str]:
    return NAMED_VALUES.get(p.name, []) + pools.get(p.name, []) + pools.get(p.name.removesuffix("s"), [])


def scalar_values(p: Param, pools: Pools, clean: bool) -> st.SearchStrategy[str]:
    """Values for one scalar parameter: plausible ones when `clean`, anything but plausible often otherwise."""
    good: list[st.SearchStrategy[str]] = []
    bad: list[st.SearchStrategy[str]] = [junk_text]
    if known := known_values(p, pools):
        good.append(st.sampled_from(known))
        bad.append(st.sampled_from(NAMED_JUNK.get(p.name, ["x"])))
    if p.choices:
        good.append(st.sampled_from(p.choices))
    if p.kind == "integer":
        low = int(p.minimum) if p.minimum is not None else 0
        high = int(p.maximum) if p.maximum is not None else max(low, 0) + 100
        good.append(st.integers(low, high).map(str))
        bad += [
            st.integers(low - 3, high + 3).map(str),
            st.integers(-(2**70), 2**70).map(str),
            st.sampled_from(INTEGER_JUNK),
        ]
    elif p.kind == "number":
        low_f = p.minimum if p.minimum is not None else 0.0
        high_f = p.maximum if p.maximum is not None else low_f + 100.0
        good.append(st.floats(low_f, high_f).map(str))
        bad += [st.floats().map(str), st.sampled_from(NUMBER_JUNK)]
    elif p.kind == "boolean":
        good.append(st.sampled_from(["true", "false", "True", "False"]))
        bad.append(st.sampled_from(BOOLEAN_JUNK))
    elif p.kind == "json":
        good.append(
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                lambda kids: (
                    st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3)
                ),
                max_leaves=8,
            ).map(json.dumps)
        )
        bad.append(json_array_text)
    elif not good:  # a free-form string
        good.append(clean_name if p.max_length is None or p.max_length >= 31 else st.just("x"))
    if clean:
        return st.one_of(good)
    return st.one_of(*good, *bad)


@st.composite
def wire_pairs(draw: st.DrawFn, p: Param, name: str, pools: Pools, clean: bool) -> list[tuple[str, str]]:
    """How a client could put parameter `p` on the wire — or, unless `clean`, get it wrong."""
    if p.kind == "list" and p.item is not None:
        styles = ["indexed", "indexed"] + (["json"] if p.json_array else [])
        if not clean:
            styles += ["json", "scalar", "both"]
        style = draw(st.sampled_from(styles))
        pairs: list[tuple[str, str]] = []
        if style in ("json", "both"):
            items = st.lists(scalar_values(p.item, pools, True), min_size=1, max_size=3).map(json.dumps)
            pairs.append((name, draw(items if clean else st.one_of(items, json_array_text))))
        if style == "scalar":
            pairs.append((name, draw(junk_text)))
        if style in ("indexed", "both"):
            indexes = st.integers(1, 3).map(str) if clean else INDEXES
            for index in draw(st.lists(indexes, min_size=1 if clean else 0, max_size=4, unique=clean)):
                pairs += draw(wire_pairs(p.item, f"{name}.{index}", pools, clean))
        return pairs
    if p.kind == "struct":
        if not clean and draw(st.integers(0, 5)) == 0:
            return [(name, draw(junk_text))]
        pairs = []
        for f in p.fields:
            if f.required or draw(st.booleans()):
                pairs += draw(wire_pairs(f, f"{name}.{f.name}", pools, clean))
        return pairs
    return [(name, draw(scalar_values(p, pools, clean)))]


STRUCTURAL_NAMES = [
    "Tag.0.Key",
    "Tag.999999999.Key",
    "Tag..Key",
    "Tag.1.Key",
    "Tag.1",
    "Tag",
    "Tag.1.Key.Extra",
    "Tag.-1.Value",
    "DataDisk.1.Size",
    "DataDisk.0.Size",
    "DataDisk..Size",
    "DataDisk.1",
    "SystemDisk.Size",
    "SystemDisk",
    "NetworkInterface.1.SecurityGroupIds.1",
    "HostNames.1",
    ".",
    "..",
    "...",
    "",
    ".Tag",
    "Tag.",
    "InstanceIds",
    "KeyPairNames",
    "KeyPairNames.1",
    "KeyPairNames.0",
    "RegionId.1",
    "RegionId..x",
    "MaxResults..x",
]
STRUCTURAL_VALUES = ["abc", "1", "0", "", "-1", '["i-1"]', '[1,{"a":2}]', "not json", "true"]


@st.composite
def noise_pairs(draw: st.DrawFn, spec: ActionSpec) -> list[tuple[str, str]]:
    """Parameter names of the wrong shape, aimed at the action's own parameters."""
    declared = [p.name for p in spec.params] or ["RegionId"]
    names = st.one_of(
        st.sampled_from(STRUCTURAL_NAMES),
        st.builds(
            lambda base, index, tail: f"{base}.{index}{tail}",
            st.sampled_from(declared),
            INDEXES,
            st.sampled_from(["", ".Key", ".Size", ".1", ".", ".Key.Extra", "..x"]),
        ),
        st.builds(lambda base: f"{base}..x", st.sampled_from(declared)),
        hostile_text,
    )
    values = st.one_of(st.sampled_from(STRUCTURAL_VALUES), junk_text, json_array_text)
    pairs = draw(st.lists(st.tuples(names, values), max_size=4))
    return [(n, v) for n, v in pairs if n not in PROTOCOL_PARAMS]


@st.composite
def signed_request(draw: st.DrawFn, backend: str, key: tuple[str, str], host: str, pools: Pools) -> Sent:
    version, spec = draw(st.sampled_from(ACTIONS))
    clean = draw(st.booleans())  # half plausible calls that reach the handlers, half hostile ones
    pairs: list[tuple[str, str]] = []
    for p in spec.params:
        if draw(st.integers(0, 9)) < (9 if p.required else 4 if clean else 7):
            pairs += draw(wire_pairs(p, p.name, pools, clean))
    if not clean:
        pairs += draw(noise_pairs(spec))
        if draw(st.integers(0, 5)) == 0:  # thousands of parameters (signed, so under the limit they verify)
            count = draw(st.one_of(st.integers(1000, 4900), st.integers(MAX_FIELDS - 15, MAX_FIELDS + 3)))
            pairs += [(f"Bulk{i}", "x") for i in range(count)]
    params = {name: value for name, value in pairs if name not in PROTOCOL_PARAMS}
    fmt = draw(st.sampled_from([None, "JSON", "XML", "xml", "json"]))
    if fmt is not None:
        params["Format"] = fmt
    scheme = draw(st.sampled_from(["v1-get", "v1-post", "v1-form", "v3-query", "v3-form"]))
    method = "GET" if scheme == "v1-get" else "POST"
    headers: dict[str, str] = {}
    body = b""
    query = ""
    if scheme.startswith("v1"):
        signed = sign_v1(method, {"Action": spec.name, "Version": version, **params}, *key)
        encoded = urlencode(signed, quote_via=quote)
        if scheme == "v1-form":
            body, headers["content-type"] = encoded.encode(), FORM_TYPE
        else:
            query = encoded
    elif scheme == "v3-form":
        body = urlencode(params, quote_via=quote).encode()
        headers = {
            **sign_v3(method, host, spec.name, version, {}, *key, body=body),
            "content-type": FORM_TYPE,
        }
    else:
        query = urlencode(params, quote_via=quote)
        headers = sign_v3(method, host, spec.name, version, params, *key)
    decoded, within = decoded_params(query, body, headers.get("content-type"))
    return Sent(
        method,
        f"/?{query}" if query else "/",
        headers,
        body,
        backend,
        action=spec.name,
        declared=frozenset(p.name for p in spec.params),
        params=decoded,
        expect_xml=wants_xml(method, decoded, within),
        within_limits=within,
    )


# ---- the fuzz tests --------------------------------------------------------------------------


def test_fuzz_raw_requests(live: LiveServer, log_watch: Tolerated) -> None:
    """Unsigned or badly signed requests of every shape: an ECS error (or healthz), never a 5xx or a hang."""

    @FUZZ_SETTINGS
    @given(sent=raw_request(live.backend))
    def run(sent: Sent) -> None:
        check(live, sent, send(live, sent), log_watch)

    run()


def test_fuzz_signed_requests_of_every_action(
    live: LiveServer, fuzz_key: tuple[str, str], seeded_ids: Pools, log_watch: Tolerated
) -> None:
    """Validly signed (v1 query, v1 form body, v3 query, v3 form body) calls of every known action with
    random parameter values: they authenticate, then succeed or fail validation, never with a 5xx."""
    seen_codes: dict[str, int] = {}

    @FUZZ_SETTINGS
    @given(sent=signed_request(live.backend, fuzz_key, live.endpoint, seeded_ids))
    def run(sent: Sent) -> None:
        answer = send(live, sent)
        root, fields = check(live, sent, answer, log_watch)
        code = str(fields.get("Code", "OK" if answer.status == 200 else "?"))
        seen_codes[code] = seen_codes.get(code, 0) + 1
        assert not refused_by_protocol(fields), f"a signed request was refused: {fields}\n{sent.describe()}"
        if answer.status == 200 and root:
            assert root.endswith("Response"), root

    run()
    # The fuzz reached past authentication: into validation and into the handlers.
    assert seen_codes.get("OK", 0) > 0, seen_codes
    assert any(c.startswith(("InvalidParameter", "MissingParameter.")) for c in seen_codes), seen_codes


def test_fuzz_signed_request_replayed_is_nonce_used_not_a_crash(
    live: LiveServer, fuzz_key: tuple[str, str], seeded_ids: Pools, log_watch: Tolerated
) -> None:
    """Whatever the parameters, replaying a signed request is refused as SignatureNonceUsed."""

    @settings(FUZZ_SETTINGS, max_examples=100)
    @given(sent=signed_request(live.backend, fuzz_key, live.endpoint, seeded_ids))
    def run(sent: Sent) -> None:
        first = send(live, sent)
        check(live, sent, first, log_watch)
        second = send(live, sent)
        _, fields = check(live, sent, second, log_watch)
        if sent.within_limits:  # (beyond the limit the request is refused before authentication)
            assert fields.get("Code") == "SignatureNonceUsed", (first.status, second.body[:300])

    run()


# ---- bugs the fuzzing found: regression tests, and strict xfail pins for the open ones --------


def signed_answer(live: LiveServer, params: dict[str, str], *, form: bool = False) -> Answer:
    signed = sign_v1("POST", {"Version": VERSIONS["ecs"], **params}, ROOT_KEY_ID, ROOT_SECRET)
    encoded = urlencode(signed, quote_via=quote)
    if form:
        sent = Sent("POST", "/", {"content-type": FORM_TYPE}, encoded.encode(), live.backend)
    else:
        sent = Sent("POST", "/?" + encoded, {}, b"", live.backend)
    return send(live, sent)


def assert_answered(answer: Answer) -> dict[str, str]:
    """Not a server error: a parseable ECS body with a RequestId."""
    assert answer.status < 500, answer.body[:300]
    _, fields = parse_body(answer)
    assert fields["RequestId"], fields
    return fields


def assert_client_error_answer(answer: Answer, code: str) -> None:
    assert 400 <= answer.status < 500, answer.body[:300]
    assert assert_answered(answer)["Code"] == code


@pytest.mark.parametrize(
    "params",
    [
        {"Action": "DescribeZones", "RegionId": "cn-hangzhou", "RegionId..x": "1"},
        {"Action": "DescribeRegions", "AcceptLanguage..x": "1"},
        {"Action": "DescribeInstanceTypes", "MaxResults..x": "1"},
        {"Action": "DeleteKeyPairs", "RegionId": "cn-hangzhou", "KeyPairNames..x": "1"},
    ],
    ids=["string", "string-with-choices", "integer", "json-array-list"],
)
def test_name_with_an_empty_segment_is_not_an_internal_error(
    live: LiveServer, params: dict[str, str]
) -> None:
    """Found by this fuzz (RegionId..x used to reach the handlers as a dict: 500)."""
    assert_answered(signed_answer(live, params))


def test_deeply_nested_json_array_is_invalid_parameter(live: LiveServer) -> None:
    """Found by this fuzz (json.loads raised RecursionError: 500)."""
    params = {"Action": "DeleteKeyPairs", "RegionId": "cn-hangzhou", "KeyPairNames": "[" * 100_000}
    assert_client_error_answer(signed_answer(live, params, form=True), "InvalidParameter")


def test_lone_surrogate_in_json_array_is_invalid_parameter(live: LiveServer) -> None:
    """Found by this fuzz (the unencodable string reached the store: 500)."""
    params = {"Action": "DeleteKeyPairs", "RegionId": "cn-hangzhou", "KeyPairNames": '["\\ud800"]'}
    assert_client_error_answer(signed_answer(live, params), "InvalidParameter")


@pytest.mark.parametrize("action", ["ApplyAutoSnapshotPolicy", "CancelAutoSnapshotPolicy"])
@pytest.mark.parametrize("text", ['["\\ud800"]', '["d-\\u0000"]'], ids=["surrogate", "nul"])
def test_unstorable_text_in_a_json_list_parameter_is_a_client_error(
    live: LiveServer, action: str, text: str
) -> None:
    """Found by the fuzz: diskIds is parsed from JSON by the action, and passed the lone surrogate
    on to the store (500); it must refuse what the typed list parameters refuse."""
    params = {
        "Action": action,
        "regionId": "cn-hangzhou",
        "autoSnapshotPolicyId": "sp-nubes0000000000001",
        "diskIds": text,
    }
    assert_client_error_answer(signed_answer(live, params), "ParameterInvalid")


@pytest.mark.parametrize(
    "params",
    [
        {"Action": "DescribeInstanceTypes", "InstanceTypes.\x01": "1"},
        {"Action": "DeleteKeyPairs", "RegionId": "cn-hangzhou", "KeyPairNames": '["\\u0001"]'},
    ],
    ids=["name-in-message", "value-in-message"],
)
def test_xml_error_echoing_a_control_character_stays_well_formed(
    live: LiveServer, params: dict[str, str]
) -> None:
    """Found by this fuzz (the control character used to be copied into the XML: unparseable)."""
    answer = signed_answer(live, {**params, "Format": "XML"})
    assert answer.status in (400, 404) and answer.headers["content-type"] == XML_TYPE
    root, fields = parse_body(answer)  # raises ValueError on an unparseable body
    assert root == "Error" and fields["Code"] and fields["RequestId"]


@pytest.mark.parametrize(
    "params",
    [
        {"Action": "DescribeRegions", "AccessKeyId": "a\x00b"},
        {"Action": "DescribeKeyPairs", "RegionId": "cn-hangzhou", "KeyPairName": "a\x00"},
        {"Action": "DescribeKeyPairs", "RegionId": "cn-hangzhou", "ResourceGroupId": "rg\x00"},
        {"Action": "DeleteKeyPairs", "RegionId": "cn-hangzhou", "KeyPairNames": '["\\u0000"]'},
    ],
    ids=["access-key-id", "key-pair-name", "resource-group-id", "json-array-item"],
)
def test_nul_character_is_refused(live: LiveServer, params: dict[str, str]) -> None:
    """Found by this fuzz: a NUL that reached the store was a 500 on PostgreSQL. Now refused up front."""
    if "AccessKeyId" in params:  # unauthenticated: the key lookup itself used to hit the store
        fields = dict(params)
        signed = sign_v1(
            "GET", {"Version": VERSIONS["ecs"], "Action": fields.pop("Action")}, fields["AccessKeyId"], "x"
        )
        answer = send(live, Sent("GET", "/?" + urlencode(signed, quote_via=quote), {}, b"", live.backend))
        assert_client_error_answer(answer, "InvalidAccessKeyId.NotFound")
    else:
        assert_client_error_answer(signed_answer(live, params), "InvalidParameter")


class SetupFailed(RuntimeError):
    """The scenario could not be built: an error of the test's preconditions, not the bug under test."""


def must_call(live: LiveServer, version: str, action: str, params: dict[str, str]) -> dict[str, Any]:
    signed = sign_v1(
        "POST",
        {"Action": action, "Version": version, "RegionId": "cn-hangzhou", **params},
        ROOT_KEY_ID,
        ROOT_SECRET,
    )
    answer = send(live, Sent("POST", "/?" + urlencode(signed, quote_via=quote), {}, b"", live.backend))
    if answer.status != 200:
        raise SetupFailed(f"{action} answered {answer.status}: {answer.body[:300]!r}")
    doc: dict[str, Any] = json.loads(answer.body)
    return doc


def must_become_available(live: LiveServer, action: str, params: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while must_call(live, VERSIONS["vpc"], action, params).get("Status") != "Available":
        if time.monotonic() > deadline:
            raise SetupFailed(f"{action} {params}: not Available after 30 s")
        time.sleep(0.1)


def test_modify_network_interface_to_the_groups_it_has_is_not_an_internal_error(live: LiveServer) -> None:
    """Found by this fuzz (the replaced membership row collided with the new one: UNIQUE constraint, 500)."""
    ecs, vpc = VERSIONS["ecs"], VERSIONS["vpc"]
    vpc_id = must_call(live, vpc, "CreateVpc", {"CidrBlock": "10.0.0.0/8"})["VpcId"]
    must_become_available(live, "DescribeVpcAttribute", {"VpcId": vpc_id})
    zone = NAMED_VALUES["ZoneId"][0]
    vswitch_id = must_call(
        live, vpc, "CreateVSwitch", {"VpcId": vpc_id, "ZoneId": zone, "CidrBlock": "10.9.0.0/24"}
    )
    must_become_available(live, "DescribeVSwitchAttributes", {"VSwitchId": vswitch_id["VSwitchId"]})
    group = must_call(live, ecs, "CreateSecurityGroup", {"VpcId": vpc_id})["SecurityGroupId"]
    eni = must_call(
        live, ecs, "CreateNetworkInterface", {"VSwitchId": vswitch_id["VSwitchId"], "SecurityGroupId": group}
    )["NetworkInterfaceId"]
    signed = sign_v1(
        "POST",
        {
            "Action": "ModifyNetworkInterfaceAttribute",
            "Version": ecs,
            "RegionId": "cn-hangzhou",
            "NetworkInterfaceId": eni,
            "SecurityGroupId.1": group,
        },
        ROOT_KEY_ID,
        ROOT_SECRET,
    )
    answer = send(live, Sent("POST", "/?" + urlencode(signed, quote_via=quote), {}, b"", live.backend))
    assert answer.status == 200, answer.body[:300]  # the groups it has already: nothing to change
    attributes = must_call(live, ecs, "DescribeNetworkInterfaces", {"NetworkInterfaceId.1": eni})
    sets = attributes["NetworkInterfaceSets"]["NetworkInterfaceSet"]
    assert sets[0]["SecurityGroupIds"]["SecurityGroupId"] == [group]
