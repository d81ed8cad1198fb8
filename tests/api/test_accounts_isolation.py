"""Accounts: the root key on first start, `nubes admin account|key`, and isolation between accounts.

Every resource belongs to an account and a region; key pairs are the per-account resource so far."""

from __future__ import annotations

import configparser
import itertools
import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from Tea.exceptions import TeaException

from ..conftest import (
    PG_ENV,
    ROOT_KEY_ID,
    ROOT_SECRET,
    LiveServer,
    _postgres_database,
    backends,
    free_port,
    stop_server,
    tea_ecs,
)

REGION = "cn-hangzhou"
OTHER_REGION = "cn-beijing"
KEY_ENV = ("NUBES_ACCESS_KEY_ID", "NUBES_ACCESS_KEY_SECRET")


@dataclass(frozen=True)
class Failure:
    code: str
    status: int
    message: str


def expect_failure(call: Callable[[], object]) -> Failure:
    with pytest.raises(TeaException) as info:
        call()
    error = info.value
    data = error.data if isinstance(error.data, dict) else {}
    return Failure(str(error.code), int(data.get("statusCode", 0)), str(data.get("Message", "")))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def probe(live: LiveServer, key: tuple[str, str]) -> str:
    """'OK' if a request signed with the key is served, else the error code."""
    try:
        tea_ecs(live, key=key).describe_regions(ecs_models.DescribeRegionsRequest())
    except TeaException as error:
        return str(error.code)
    return "OK"


# ---- first start ---------------------------------------------------------------------------


_FRESH_SERVERS = itertools.count(1)


def server_options() -> set[str]:
    """The options `nubes server` takes, so that this variant passes the ones conftest passes."""
    from nubes.cli.main import server

    return {opt for param in server.params for opt in getattr(param, "opts", [])}


def start_fresh(tmp: Path, data_dir: Path, database_url: str | None, env: dict[str, str]) -> LiveServer:
    """conftest.start_server, but with no AccessKey in the server's environment unless `env` gives one."""
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    server_env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
    server_env.update(env)
    args = [
        sys.executable,
        "-m",
        "nubes.cli.main",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        args += ["--database-url", database_url]
    options = server_options()
    if "--netns-prefix" in options:
        args += ["--netns-prefix", f"nf{os.getpid() % 100000}x{next(_FRESH_SERVERS)}"]
    if "--driver" in options:
        args += ["--driver", "fake"]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=server_env)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = log_path.read_text(errors="replace")
                raise RuntimeError(f"nubes server did not start:\n{output}") from None
            time.sleep(0.1)
    url = database_url or f"sqlite:///{data_dir / 'nubes.db'}"
    return LiveServer(
        endpoint=f"127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        database_url=url,
        backend="fresh",
        process=process,
        log_path=log_path,
        args=args,
    )


def read_credentials(path: Path) -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["default"]["access_key_id"], parser["default"]["access_key_secret"]


def request_log_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " nubes.api: " in line]


@pytest.fixture(params=backends())
def fresh_database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data dir, else a new PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url = _postgres_database()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must test the PostgreSQL store")
        pytest.skip(f"{PG_ENV} not set (run the tests through ./nubes-dev test to get PostgreSQL)")
    return url


@pytest.fixture
def started() -> Iterator[list[LiveServer]]:
    """Servers a test starts; all stopped when it ends."""
    servers: list[LiveServer] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            stop_server(server)


def test_first_start_without_env_key_generates_and_prints_the_root_key_once(
    tmp_path: Path, fresh_database_url: str | None, started: list[LiveServer]
) -> None:
    data_dir = tmp_path / "data"
    first = start_fresh(tmp_path, data_dir, fresh_database_url, {})
    started.append(first)

    credentials = data_dir / "credentials"
    assert credentials.is_file()
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    key_id, secret = read_credentials(credentials)
    assert key_id.startswith("LTAI") and len(secret) >= 30

    assert probe(first, (key_id, secret)) == "OK"
    body = (
        tea_ecs(first, key=(key_id, secret))
        .describe_key_pairs(ecs_models.DescribeKeyPairsRequest(region_id=REGION))
        .body
    )
    assert body.total_count == 0
    assert probe(first, (key_id, secret + "x")) == "SignatureDoesNotMatch"

    log = first.log()
    assert log.count(secret) == 1, "the secret is printed exactly once on first start"
    assert key_id in log and str(credentials) in log
    lines = request_log_lines(log)
    assert len(lines) >= 3 and all(secret not in line for line in lines)
    stop_server(first)

    second = start_fresh(tmp_path, data_dir, fresh_database_url, {})
    started.append(second)
    assert read_credentials(credentials) == (key_id, secret), "the credentials file is kept as it is"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert probe(second, (key_id, secret)) == "OK"
    second_log = second.log()
    assert secret not in second_log and "AccessKeySecret" not in second_log
    assert request_log_lines(second_log)


def test_env_key_is_used_and_neither_written_nor_printed(live: LiveServer) -> None:
    assert not (live.data_dir / "credentials").exists()
    assert ROOT_SECRET not in live.log()
    assert probe(live, (ROOT_KEY_ID, ROOT_SECRET)) == "OK"


def test_env_key_id_without_secret_refuses_to_start(tmp_path: Path) -> None:
    """Half a key pair would leave root with a key nobody knows: the server says so and stops."""
    env = {**os.environ, "NUBES_ACCESS_KEY_ID": "LTAIonlytheid000000001"}
    env.pop("NUBES_ACCESS_KEY_SECRET", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nubes.cli.main",
            "server",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--driver",
            "fake",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "NUBES_ACCESS_KEY_SECRET" in result.stdout + result.stderr


# ---- nubes admin ---------------------------------------------------------------------------


def admin(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return live.nubes("admin", *args, *live.admin_store_args(), check=False)


def parse_key(output: str) -> tuple[str, str]:
    fields = dict(line.split(":", 1) for line in output.splitlines() if line.startswith("AccessKey"))
    return fields["AccessKeyId"].strip(), fields["AccessKeySecret"].strip()


def table_rows(output: str) -> list[list[str]]:
    """The cells of a rich table's body rows."""
    rows = []
    for line in output.splitlines():
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def key_statuses(live: LiveServer, account: str) -> dict[str, str]:
    listing = admin(live, "key", "list", "--account", account)
    assert listing.returncode == 0, listing.stderr
    return {row[0]: row[1] for row in table_rows(listing.stdout)}


def test_admin_account_create_list_and_duplicate(live: LiveServer) -> None:
    name = unique("acct")
    created = admin(live, "account", "create", name)
    assert created.returncode == 0, created.stderr
    assert f"account {name}" in created.stdout
    key_id, secret = parse_key(created.stdout)
    assert probe(live, (key_id, secret)) == "OK"

    again = admin(live, "account", "create", name)
    assert again.returncode != 0
    assert f"account '{name}' exists already" in again.stderr
    assert "AccessKeySecret" not in again.stdout and "Traceback" not in again.stderr

    listing = admin(live, "account", "list")
    assert listing.returncode == 0, listing.stderr
    rows = [row for row in table_rows(listing.stdout) if row[0] == name]
    assert len(rows) == 1, "the refused create added no second account"
    uid, status, keys = rows[0][1:]
    assert uid.isdigit() and len(uid) == 16
    assert (status, keys) == ("Enabled", "1"), "the refused create added no key"
    assert "root" in [row[0] for row in table_rows(listing.stdout)]
    assert secret not in listing.stdout


def test_admin_account_create_refuses_bad_names(live: LiveServer) -> None:
    for bad_name in ("", "n" * 65):
        result = admin(live, "account", "create", bad_name)
        assert result.returncode != 0
        assert "1 to 64 characters" in result.stderr and "Traceback" not in result.stderr


def test_admin_key_lifecycle(live: LiveServer) -> None:
    name = unique("keys")
    first = live.create_account(name)

    created = admin(live, "key", "create", "--account", name)
    assert created.returncode == 0, created.stderr
    second = parse_key(created.stdout)
    assert second[0] != first[0]
    assert probe(live, first) == probe(live, second) == "OK"

    listing = admin(live, "key", "list", "--account", name)
    assert {row[0]: row[1] for row in table_rows(listing.stdout)} == {first[0]: "Active", second[0]: "Active"}
    assert first[1] not in listing.stdout and second[1] not in listing.stdout, "key list shows no secrets"

    disabled = admin(live, "key", "disable", "--account", name, second[0])
    assert disabled.returncode == 0, disabled.stderr
    assert probe(live, second) == "InvalidAccessKeyId.Inactive"
    assert probe(live, first) == "OK", "disabling one key leaves the others alone"
    assert key_statuses(live, name) == {first[0]: "Active", second[0]: "Inactive"}

    enabled = admin(live, "key", "enable", "--account", name, second[0])
    assert enabled.returncode == 0, enabled.stderr
    assert probe(live, second) == "OK"

    deleted = admin(live, "key", "delete", "--account", name, second[0])
    assert deleted.returncode == 0, deleted.stderr
    failure = expect_failure(
        lambda: tea_ecs(live, key=second).describe_regions(ecs_models.DescribeRegionsRequest())
    )
    assert (failure.code, failure.status) == ("InvalidAccessKeyId.NotFound", 404)
    assert key_statuses(live, name) == {first[0]: "Active"}
    assert probe(live, first) == "OK"


def test_admin_key_commands_refuse_an_unknown_account(live: LiveServer) -> None:
    missing = unique("nobody")
    for command in (
        ("key", "create", "--account", missing),
        ("key", "list", "--account", missing),
        ("key", "delete", "--account", missing, "LTAIwhatever"),
    ):
        result = admin(live, *command)
        assert result.returncode != 0, command
        assert missing in result.stderr, command
        assert "Traceback" not in result.stderr and "AccessKeySecret" not in result.stdout, command


# ---- isolation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    name: str
    key: tuple[str, str]
    client: Any

    def create(self, name: str, region: str = REGION) -> str:
        body = self.client.create_key_pair(
            ecs_models.CreateKeyPairRequest(region_id=region, key_pair_name=name)
        ).body
        return str(body.key_pair_finger_print)

    def import_(self, name: str, public_key: str, region: str = REGION) -> str:
        body = self.client.import_key_pair(
            ecs_models.ImportKeyPairRequest(region_id=region, key_pair_name=name, public_key_body=public_key)
        ).body
        return str(body.key_pair_finger_print)

    def key_pairs(self, region: str = REGION, **filters: Any) -> dict[str, str]:
        """name -> fingerprint of everything DescribeKeyPairs shows this tenant."""
        found: dict[str, str] = {}
        page = 1
        while True:
            body = self.client.describe_key_pairs(
                ecs_models.DescribeKeyPairsRequest(
                    region_id=region, page_number=page, page_size=50, **filters
                )
            ).body
            found.update({k.key_pair_name: k.key_pair_finger_print for k in body.key_pairs.key_pair})
            if page * 50 >= body.total_count:
                return found
            page += 1

    def delete(self, names: list[str], region: str = REGION) -> Any:
        return self.client.delete_key_pairs(
            ecs_models.DeleteKeyPairsRequest(region_id=region, key_pair_names=json.dumps(names))
        )


def tenant(live: LiveServer, prefix: str) -> Tenant:
    name = unique(prefix)
    key = live.create_account(name)
    return Tenant(name, key, tea_ecs(live, key=key))


@pytest.fixture(scope="module")
def alice(live: LiveServer) -> Tenant:
    return tenant(live, "alice")


@pytest.fixture(scope="module")
def bob(live: LiveServer) -> Tenant:
    return tenant(live, "bob")


PUBLIC_KEY = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
    + " alice@example"
)


def test_another_account_does_not_see_key_pairs(live: LiveServer, alice: Tenant, bob: Tenant) -> None:
    created = unique("a-created")
    imported = unique("a-imported")
    fingerprints = {created: alice.create(created), imported: alice.import_(imported, PUBLIC_KEY)}
    assert {n: alice.key_pairs()[n] for n in fingerprints} == fingerprints

    assert not set(fingerprints) & set(bob.key_pairs())
    assert bob.key_pairs(key_pair_name=created) == {}
    assert bob.key_pairs(key_pair_name="a-*") == {}
    assert bob.key_pairs(key_pair_finger_print=fingerprints[imported]) == {}
    root = tea_ecs(live)
    root_names = {
        k.key_pair_name
        for k in root.describe_key_pairs(
            ecs_models.DescribeKeyPairsRequest(region_id=REGION, key_pair_name="a-*", page_size=50)
        ).body.key_pairs.key_pair
    }
    assert not set(fingerprints) & root_names, "root is an account like any other"


def test_another_account_cannot_delete_key_pairs(alice: Tenant, bob: Tenant) -> None:
    target = unique("a-target")
    fingerprint = alice.create(target)
    failure = expect_failure(lambda: bob.delete([target]))
    assert (failure.code, failure.status) == ("InvalidKeyPairName.NotFound", 404)

    own = unique("b-own")
    bob.create(own)
    failure = expect_failure(lambda: bob.delete([own, target]))
    assert failure.code == "InvalidKeyPairName.NotFound"
    assert own in bob.key_pairs(), "nothing is deleted when one name is not the caller's"
    assert alice.key_pairs(key_pair_name=target) == {target: fingerprint}


def test_the_same_name_in_two_accounts_is_two_key_pairs(alice: Tenant, bob: Tenant) -> None:
    name = unique("shared")
    alice_fp = alice.create(name)
    bob_fp = bob.create(name)
    assert alice_fp != bob_fp
    assert alice.key_pairs(key_pair_name=name) == {name: alice_fp}
    assert bob.key_pairs(key_pair_name=name) == {name: bob_fp}

    bob.delete([name])
    assert bob.key_pairs(key_pair_name=name) == {}
    assert alice.key_pairs(key_pair_name=name) == {name: alice_fp}


def test_regions_are_separate(alice: Tenant) -> None:
    name = unique("regional")
    hangzhou_fp = alice.create(name, REGION)
    assert name not in alice.key_pairs(OTHER_REGION)
    failure = expect_failure(lambda: alice.delete([name], OTHER_REGION))
    assert failure.code == "InvalidKeyPairName.NotFound"
    assert alice.key_pairs(REGION, key_pair_name=name) == {name: hangzhou_fp}

    beijing_fp = alice.create(name, OTHER_REGION)
    assert beijing_fp != hangzhou_fp
    alice.delete([name], OTHER_REGION)
    assert alice.key_pairs(REGION, key_pair_name=name) == {name: hangzhou_fp}
    assert alice.key_pairs(OTHER_REGION, key_pair_name=name) == {}


def test_admin_key_commands_refuse_other_accounts_keys_and_unknown_keys(
    live: LiveServer, alice: Tenant, bob: Tenant
) -> None:
    for command in (
        ("key", "disable", "--account", bob.name, alice.key[0]),
        ("key", "delete", "--account", alice.name, "LTAIdoesnotexist00000000"),
    ):
        result = admin(live, *command)
        assert result.returncode != 0, command
        assert f"account '{command[3]}' has no AccessKey {command[4]}" in result.stderr, command
    assert probe(live, alice.key) == "OK", "alice's key is untouched"
