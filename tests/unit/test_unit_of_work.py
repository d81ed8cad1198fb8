"""An action's effects and its ClientToken commit in one transaction; agents hear of a change
only once it is committed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from nubes.actions import all_tables
from nubes.api.app import ApiApp
from nubes.api.auth import Authenticator
from nubes.api.registry import Registry
from nubes.api.signing import sign_v1
from nubes.api.throttle import Throttle
from nubes.catalog.model import load_catalog
from nubes.clock import SystemClock
from nubes.domain.nonces import SignatureNonces
from nubes.domain.quotas import Quotas
from nubes.services import build_services
from nubes.store.db import Database
from nubes.store.models import IdempotencyRecord, Vpc

KEY_ID, SECRET = "LTAIunitofwork000001", "unitOfWorkSecret000000000001"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ApiApp]:
    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    db.migrate()
    services = build_services(db, load_catalog(), SystemClock(), tmp_path, Quotas())
    services.accounts.ensure_root(KEY_ID, SECRET)
    yield ApiApp(
        services,
        Registry(all_tables()),
        Authenticator(services.accounts, services.clock, SignatureNonces(db)),
        Throttle(0, 0),
    )
    db.dispose()


def call(app: ApiApp, action: str, params: dict[str, str], version: str = "2016-04-28") -> tuple[int, Any]:
    query = urlencode(
        sign_v1("GET", {"Action": action, "Version": version, "Format": "JSON", **params}, KEY_ID, SECRET)
    ).encode()
    response = app.handle("GET", "/", query, [], b"")
    return response.status, json.loads(response.body)


def count(app: ApiApp, model: Any) -> int:
    with app.services.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_an_action_is_undone_when_its_client_token_cannot_be_saved(
    app: ApiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the action's commit and the token's would let the retry act twice: here
    saving the token fails, and the VPC must not exist either."""

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("the store went away")

    monkeypatch.setattr(app.services.idempotency, "remember", fail)
    status, body = call(
        app, "CreateVpc", {"RegionId": "cn-hangzhou", "CidrBlock": "10.0.0.0/16", "ClientToken": "tok-1"}
    )
    assert status == 500 and body["Code"] == "InternalError"
    assert count(app, Vpc) == 0
    monkeypatch.undo()
    status, body = call(
        app, "CreateVpc", {"RegionId": "cn-hangzhou", "CidrBlock": "10.0.0.0/16", "ClientToken": "tok-1"}
    )
    assert status == 200
    again_status, again = call(
        app, "CreateVpc", {"RegionId": "cn-hangzhou", "CidrBlock": "10.0.0.0/16", "ClientToken": "tok-1"}
    )
    assert again_status == 200 and again["VpcId"] == body["VpcId"]
    assert count(app, Vpc) == 1 and count(app, IdempotencyRecord) == 1


def test_a_failed_action_leaves_no_client_token(app: ApiApp) -> None:
    status, body = call(
        app, "CreateVpc", {"RegionId": "cn-hangzhou", "CidrBlock": "10.0.0.0/33", "ClientToken": "tok-2"}
    )
    assert status == 400, body
    assert count(app, IdempotencyRecord) == 0 and count(app, Vpc) == 0


def test_agents_hear_of_a_change_only_after_it_committed(app: ApiApp) -> None:
    """A listener that reads the store when told must find the new VPC there."""
    seen: list[int] = []
    app.services.notify.listeners.append(lambda _vpc_id: seen.append(count(app, Vpc)))
    status, _ = call(app, "CreateVpc", {"RegionId": "cn-hangzhou", "CidrBlock": "10.0.0.0/16"})
    assert status == 200
    assert seen and all(n == 1 for n in seen)


def test_units_of_work_do_not_nest(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    with db.unit_of_work(), pytest.raises(RuntimeError), db.unit_of_work():
        pass
    db.dispose()
