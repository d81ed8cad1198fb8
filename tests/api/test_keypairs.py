"""SSH key pairs through the official clients: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPairs.

Every test works in an account of its own module (created through `nubes admin`), with names unique
to the test, so that the session-wide server can be shared with other test modules."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.CreateKeyPairRequest import CreateKeyPairRequest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from Tea.exceptions import TeaException

from ..conftest import LiveServer, acs_client, start_server, stop_server, tea_ecs

REGION = "cn-hangzhou"


@dataclass(frozen=True)
class Failure:
    code: str
    status: int
    message: str


@dataclass(frozen=True)
class Owner:
    """An account made for this module, with a Tea client signed by its key."""

    key: tuple[str, str]
    client: Any


def expect_failure(call: Callable[[], object]) -> Failure:
    with pytest.raises(TeaException) as info:
        call()
    error = info.value
    data = error.data if isinstance(error.data, dict) else {}
    return Failure(str(error.code), int(data.get("statusCode", 0)), str(data.get("Message", "")))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def md5_fingerprint(openssh_public_key: str) -> str:
    blob = base64.b64decode(openssh_public_key.split()[1])
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def openssh_public(
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def new_public_key(kind: str) -> str:
    if kind == "ssh-rsa":
        return openssh_public(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if kind == "ssh-ed25519":
        return openssh_public(ed25519.Ed25519PrivateKey.generate())
    if kind == "ecdsa-sha2-nistp256":
        return openssh_public(ec.generate_private_key(ec.SECP256R1()))
    raise ValueError(kind)


@pytest.fixture(scope="module")
def owner(live: LiveServer) -> Owner:
    key = live.create_account(unique("keypairs"))
    return Owner(key, tea_ecs(live, key=key))


# ---- thin wrappers over the Tea client -------------------------------------------------------


def create(owner: Owner, name: str, region: str = REGION, **extra: Any) -> Any:
    return owner.client.create_key_pair(
        ecs_models.CreateKeyPairRequest(region_id=region, key_pair_name=name, **extra)
    ).body


def import_(owner: Owner, name: str, public_key: str, region: str = REGION) -> Any:
    return owner.client.import_key_pair(
        ecs_models.ImportKeyPairRequest(region_id=region, key_pair_name=name, public_key_body=public_key)
    ).body


def describe(owner: Owner, region: str = REGION, **filters: Any) -> Any:
    return owner.client.describe_key_pairs(
        ecs_models.DescribeKeyPairsRequest(region_id=region, **filters)
    ).body


def listed(owner: Owner, pattern: str, region: str = REGION) -> dict[str, str]:
    """name -> fingerprint of the key pairs matching a KeyPairName pattern."""
    body = describe(owner, region, key_pair_name=pattern, page_size=50)
    return {k.key_pair_name: k.key_pair_finger_print for k in body.key_pairs.key_pair}


def delete(owner: Owner, names: list[str] | str, region: str = REGION) -> Any:
    text = names if isinstance(names, str) else json.dumps(names)
    return owner.client.delete_key_pairs(
        ecs_models.DeleteKeyPairsRequest(region_id=region, key_pair_names=text)
    )


# ---- CreateKeyPair -----------------------------------------------------------------------------


def test_create_key_pair_returns_a_pkcs1_private_key_matching_the_fingerprint(owner: Owner) -> None:
    name = unique("created")
    body = create(owner, name)
    assert body.key_pair_name == name and body.request_id
    pem = body.private_key_body
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")  # PKCS#1, as ECS hands it out
    assert pem.rstrip().endswith("-----END RSA PRIVATE KEY-----")
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048
    public = openssh_public(private)
    assert re.fullmatch(r"([0-9a-f]{2}:){15}[0-9a-f]{2}", body.key_pair_finger_print)
    assert body.key_pair_finger_print == md5_fingerprint(public)

    [item] = describe(owner, key_pair_name=name, include_public_key=True).key_pairs.key_pair
    assert item.key_pair_finger_print == body.key_pair_finger_print
    assert item.public_key.split()[:2] == public.split()[:2]


def test_create_key_pair_with_resource_group_and_filter_by_it(owner: Owner, live: LiveServer) -> None:
    name = unique("grouped")
    group, other = (live.create_resource_group(owner.key, n) for n in ("testgroup", "other"))
    create(owner, name, resource_group_id=group)
    [item] = describe(owner, key_pair_name=name).key_pairs.key_pair
    assert item.resource_group_id == group
    assert describe(owner, key_pair_name=name, resource_group_id=other).total_count == 0
    assert describe(owner, key_pair_name=name, resource_group_id=group).total_count == 1
    missing = expect_failure(lambda: create(owner, unique("lost"), resource_group_id="rg-nope"))
    assert missing.code == "InvalidResourceGroup.NotFound"


def test_creation_time_is_utc_minutes(owner: Owner) -> None:
    name = unique("timed")
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    create(owner, name)
    [item] = describe(owner, key_pair_name=name).key_pairs.key_pair
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", item.creation_time)
    created = datetime.strptime(item.creation_time, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    assert before - timedelta(minutes=1) <= created <= datetime.now(UTC) + timedelta(minutes=1)


@pytest.fixture
def server_east_of_utc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """A SQLite server whose local time zone is UTC+8 (a POSIX TZ, so no tz database is needed)."""
    monkeypatch.setenv("TZ", "XST-8")
    server = start_server(tmp_path, None, "sqlite", ["--throttle-rate", "0"])
    yield server
    stop_server(server)


def test_creation_time_is_utc_on_a_server_outside_utc(server_east_of_utc: LiveServer) -> None:
    client = tea_ecs(server_east_of_utc)
    client.create_key_pair(ecs_models.CreateKeyPairRequest(region_id=REGION, key_pair_name="tz-probe"))
    body = client.describe_key_pairs(ecs_models.DescribeKeyPairsRequest(region_id=REGION)).body
    created = datetime.strptime(body.key_pairs.key_pair[0].creation_time, "%Y-%m-%dT%H:%MZ").replace(
        tzinfo=UTC
    )
    drift = abs(created - datetime.now(UTC))
    assert drift <= timedelta(minutes=2), f"CreationTime is {drift} away from now"


# ---- ImportKeyPair -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256"])
def test_import_key_pair(owner: Owner, kind: str) -> None:
    public = new_public_key(kind)
    name = unique(f"imported-{kind}")
    body = import_(owner, name, f"{public} user@laptop\n")
    assert body.key_pair_name == name
    assert body.key_pair_finger_print == md5_fingerprint(public)
    [item] = describe(owner, key_pair_name=name, include_public_key=True).key_pairs.key_pair
    assert item.public_key.split()[:2] == [kind, public.split()[1]]
    assert item.key_pair_finger_print == md5_fingerprint(public)


def test_duplicate_name_is_already_exist(owner: Owner) -> None:
    name = unique("twice")
    first = create(owner, name)
    for again in (lambda: create(owner, name), lambda: import_(owner, name, new_public_key("ssh-ed25519"))):
        failure = expect_failure(again)
        assert (failure.code, failure.status) == ("KeyPair.AlreadyExist", 400)
        assert name in failure.message
    [item] = describe(owner, key_pair_name=name).key_pairs.key_pair
    assert item.key_pair_finger_print == first.key_pair_finger_print


@pytest.mark.parametrize(
    "name",
    [
        "1starts-with-digit",
        "-starts-with-hyphen",
        "_underscore-first",
        "x",
        "has space",
        "has/slash",
        "http://example",
        "emoji-\U0001f600",
        pytest.param("a" * 129, id="129-characters"),
        pytest.param("trailing-newline\n", id="trailing-newline"),
    ],
)
def test_malformed_name(owner: Owner, name: str) -> None:
    failure = expect_failure(lambda: create(owner, name))
    assert (failure.code, failure.status) == ("InvalidKeyPairName.Malformed", 400)
    assert expect_failure(lambda: import_(owner, name, new_public_key("ssh-ed25519"))).code == (
        "InvalidKeyPairName.Malformed"
    )


@pytest.mark.parametrize("name", ["ab", "B" * 128, "密钥对-中文", "Key:pair_name.v1-2"])
def test_well_formed_names_at_the_edges(owner: Owner, name: str) -> None:
    # the module's account is new, so these fixed names are free
    body = import_(owner, name, new_public_key("ssh-ed25519"))
    assert body.key_pair_name == name
    assert list(listed(owner, name)) == [name]


PUBLIC_RSA = new_public_key("ssh-rsa")
PUBLIC_ED25519 = new_public_key("ssh-ed25519")


@pytest.mark.parametrize(
    "body",
    [
        "not a key",
        "ssh-rsa",
        "ssh-rsa !!!not-base64!!!",
        "ssh-rsa AAAA",
        "ssh-dss " + PUBLIC_RSA.split()[1],
        "ssh-ed25519 " + PUBLIC_RSA.split()[1],  # the type does not match the blob
        PUBLIC_RSA.split()[1],
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
    ],
    ids=["words", "type-only", "bad-base64", "short-blob", "dsa", "type-mismatch", "blob-only", "pem"],
)
def test_malformed_public_key(owner: Owner, body: str) -> None:
    name = unique("badkey")
    failure = expect_failure(lambda: import_(owner, name, body))
    assert (failure.code, failure.status) == ("InvalidPublicKeyBody.Malformed", 400)
    assert describe(owner, key_pair_name=name).total_count == 0


def test_missing_parameters(owner: Owner) -> None:
    failure = expect_failure(
        lambda: owner.client.create_key_pair(ecs_models.CreateKeyPairRequest(region_id=REGION))
    )
    assert failure.code == "MissingParameter.KeyPairName"
    failure = expect_failure(
        lambda: owner.client.import_key_pair(
            ecs_models.ImportKeyPairRequest(region_id=REGION, key_pair_name="pk1")
        )
    )
    assert failure.code == "MissingParameter.PublicKeyBody"


# ---- DescribeKeyPairs --------------------------------------------------------------------------


def test_describe_by_wildcard_exact_name_and_fingerprint(owner: Owner) -> None:
    prefix = unique("find")
    keys = {
        f"{prefix}-web-1": PUBLIC_ED25519,
        f"{prefix}-web-2": PUBLIC_RSA,
        f"{prefix}-db-1": new_public_key("ssh-ed25519"),
    }
    for name, public in keys.items():
        import_(owner, name, public)
    expected = {name: md5_fingerprint(public) for name, public in keys.items()}

    assert listed(owner, f"{prefix}-*") == expected
    assert set(listed(owner, f"{prefix}-web-*")) == {f"{prefix}-web-1", f"{prefix}-web-2"}
    assert set(listed(owner, f"*{prefix[-10:]}-db-*")) == {f"{prefix}-db-1"}
    assert set(listed(owner, f"{prefix}-web-1")) == {f"{prefix}-web-1"}
    assert listed(owner, f"{prefix}-web") == {}  # without * the name must match exactly

    body = describe(owner, key_pair_name=f"{prefix}-*", key_pair_finger_print=expected[f"{prefix}-db-1"])
    assert [k.key_pair_name for k in body.key_pairs.key_pair] == [f"{prefix}-db-1"]
    assert body.total_count == 1

    plain = describe(owner, key_pair_name=f"{prefix}-*").key_pairs.key_pair
    assert all(k.public_key is None for k in plain)
    full = describe(owner, key_pair_name=f"{prefix}-*", include_public_key=True).key_pairs.key_pair
    assert {k.key_pair_name: k.public_key.split()[1] for k in full} == {
        n: p.split()[1] for n, p in keys.items()
    }


def test_describe_pages(owner: Owner) -> None:
    prefix = unique("paged")
    names = {f"{prefix}-{i}" for i in range(7)}
    for name in names:
        import_(owner, name, new_public_key("ssh-ed25519"))

    seen: list[str] = []
    for page_number, size in ((1, 3), (2, 3), (3, 1), (4, 0)):
        body = describe(owner, key_pair_name=f"{prefix}-*", page_number=page_number, page_size=3)
        assert (body.total_count, body.page_number, body.page_size) == (7, page_number, 3)
        assert len(body.key_pairs.key_pair) == size
        seen += [k.key_pair_name for k in body.key_pairs.key_pair]
    assert sorted(seen) == sorted(names)  # every key pair once, none twice

    default = describe(owner, key_pair_name=f"{prefix}-*")
    assert (default.page_number, default.page_size, len(default.key_pairs.key_pair)) == (1, 10, 7)
    assert describe(owner, key_pair_name=f"{prefix}-*", page_size=50).total_count == 7


@pytest.mark.parametrize(("field", "value"), [("page_size", 51), ("page_size", 0), ("page_number", 0)])
def test_describe_paging_limits(owner: Owner, field: str, value: int) -> None:
    filters: dict[str, Any] = {field: value}
    failure = expect_failure(lambda: describe(owner, **filters))
    assert (failure.code, failure.status) == ("InvalidParameter", 400)


# ---- DeleteKeyPairs ----------------------------------------------------------------------------


def test_delete_key_pairs_named_in_a_json_array(owner: Owner) -> None:
    prefix = unique("gone")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        import_(owner, name, new_public_key("ssh-ed25519"))
    assert delete(owner, names[:2]).body.request_id
    assert list(listed(owner, f"{prefix}-*")) == [names[2]]


def test_delete_key_pairs_is_all_or_nothing(owner: Owner) -> None:
    prefix = unique("kept")
    names = [f"{prefix}-{i}" for i in range(2)]
    for name in names:
        import_(owner, name, new_public_key("ssh-ed25519"))
    failure = expect_failure(lambda: delete(owner, [*names, f"{prefix}-missing"]))
    assert (failure.code, failure.status) == ("InvalidKeyPairName.NotFound", 404)
    assert f"{prefix}-missing" in failure.message
    assert sorted(listed(owner, f"{prefix}-*")) == names


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("kp-plain-name", "InvalidParameter"),
        ('{"a": 1}', "InvalidParameter"),
        ("[", "InvalidParameter"),
        ("[]", "MissingParameter.KeyPairNames"),
    ],
)
def test_delete_key_pairs_needs_a_non_empty_json_array(owner: Owner, text: str, code: str) -> None:
    failure = expect_failure(lambda: delete(owner, text))
    assert (failure.code, failure.status) == (code, 400)


def test_delete_key_pairs_with_an_empty_name_is_a_client_error(owner: Owner) -> None:
    name = unique("survivor")
    import_(owner, name, new_public_key("ssh-ed25519"))
    try:
        delete(owner, ["", name])
    except TeaException as error:
        data = error.data if isinstance(error.data, dict) else {}
        assert data.get("statusCode") in (400, 404), f"{error.code} {data.get('statusCode')}"
    else:
        assert name not in listed(owner, name)


# ---- regions -----------------------------------------------------------------------------------


def test_unknown_region_is_not_found_for_every_action(owner: Owner) -> None:
    region = "xx-nowhere-1"
    calls: list[Callable[[], object]] = [
        lambda: create(owner, unique("nowhere"), region=region),
        lambda: import_(owner, unique("nowhere"), PUBLIC_ED25519, region=region),
        lambda: describe(owner, region=region),
        lambda: delete(owner, ["whatever"], region=region),
    ]
    for call in calls:
        failure = expect_failure(call)
        assert (failure.code, failure.status) == ("InvalidRegionId.NotFound", 404)
        assert region in failure.message


# ---- aliyun-python-sdk-core --------------------------------------------------------------------


def test_create_key_pair_through_aliyunsdkcore(live: LiveServer, owner: Owner) -> None:
    client = acs_client(live, key=owner.key)
    name = unique("popcore")
    request = CreateKeyPairRequest()
    request.set_KeyPairName(name)
    body = json.loads(client.do_action_with_exception(request))  # RegionId comes from the client
    assert body["KeyPairName"] == name and body["RequestId"]
    private = serialization.load_pem_private_key(body["PrivateKeyBody"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert body["KeyPairFingerPrint"] == md5_fingerprint(openssh_public(private))
    assert listed(owner, name) == {name: body["KeyPairFingerPrint"]}

    with pytest.raises(ServerException) as info:
        client.do_action_with_exception(request)
    assert info.value.get_error_code() == "KeyPair.AlreadyExist"
    assert info.value.get_http_status() == 400
