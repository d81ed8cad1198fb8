"""The keys of encrypted disks: one per account, made once, kept in the store only wrapped under
the master key file (0600), which a copy of the store does not hold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from nubes.clock import ManualClock
from nubes.domain.disk_keys import DiskKeys, MasterKey
from nubes.store.db import Database
from nubes.store.models import Account, AccountDiskKey


def accounts(db: Database, clock: ManualClock, n: int) -> list[int]:
    with db.session() as s:
        rows = [Account(name=f"a{i}", uid=f"100000000000000{i}", created_at=clock.now()) for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [a.id for a in rows]


def test_one_key_per_account_wrapped_under_a_0600_master_key(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 1, 5, tzinfo=UTC))
    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    db.migrate()
    first, second = accounts(db, clock, 2)
    master = MasterKey(tmp_path / "master.key")
    keys = DiskKeys(db, clock, master)
    key = keys.key_of(first)
    assert len(key) == 64 and keys.key_of(first) == key  # made once
    assert keys.key_of(second) != key
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    # a new process with the same master key file reads the same keys
    assert DiskKeys(db, clock, MasterKey(tmp_path / "master.key")).key_of(first) == key
    with db.session() as s:
        wrapped = {row.account_id: row.wrapped_key for row in s.query(AccountDiskKey)}
    assert bytes.fromhex(key) not in wrapped[first]  # the store holds no key in the clear
    # without the master key the store's rows open nothing; nor does a row moved to another account
    with pytest.raises(InvalidTag):
        MasterKey(tmp_path / "other.key").unwrap(first, wrapped[first])
    with pytest.raises(InvalidTag):
        master.unwrap(second, wrapped[first])
