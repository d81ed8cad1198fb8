"""The Alembic migrations build exactly the schema the models describe (no drift), on SQLite
and, when the test run has one, PostgreSQL."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nubes.store.db import Database
from nubes.store.models import Base


def _assert_no_drift(db: Database) -> None:
    db.migrate()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def _at_revision(tmp_path: Path, revision: str) -> Database:
    """A new SQLite store migrated up to `revision` only."""
    from alembic import command
    from alembic.config import Config

    from nubes.store.db import MIGRATIONS

    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return db


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    _assert_no_drift(Database(f"sqlite:///{tmp_path / 'nubes.db'}"))


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    db.migrate()
    db.migrate()
    _assert_no_drift(db)


@pytest.mark.postgres
def test_postgres_schema_matches_models() -> None:
    admin_url = os.environ.get("NUBES_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("NUBES_TEST_POSTGRES_URL is not set: CI must test the PostgreSQL store")
        pytest.skip("NUBES_TEST_POSTGRES_URL not set")
    import psycopg

    name = f"nubes_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(admin_url.rpartition("/")[0] + "/" + name)
    try:
        _assert_no_drift(db)
    finally:
        db.dispose()


def test_nonces_in_their_window_survive_the_compact_nonce_migration(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from nubes.domain.nonces import SignatureNonces

    db = _at_revision(tmp_path, "0007")
    now = datetime.now(UTC)
    old_digest = "0f" * 32  # revision 0006 kept the whole SHA-256 in hex
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO signature_nonces (digest, expires_at) VALUES (:d, :e)"),
            {"d": old_digest, "e": (now + timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S.%f")},
        )
    db.migrate()
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT digest, expires_at FROM signature_nonces")).all()
    assert rows == [(bytes.fromhex("0f" * 16), int((now + timedelta(minutes=10)).timestamp()))]
    nonces = SignatureNonces(db)
    try:
        assert nonces.use("AK", "fresh", now)
        assert not nonces.use("AK", "fresh", now)
    finally:
        nonces.close()


def test_the_resource_group_migration_gives_each_account_a_default_group(tmp_path: Path) -> None:
    """0016: every account there is gets its default group, and its key pairs without a group
    join it (the later accounts get theirs when first needed)."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    db = _at_revision(tmp_path, "0015")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO accounts (id, name, uid, status, created_at) "
                "VALUES (7, 'old', '1234567890123456', 'Active', :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO key_pairs (account_id, region_id, name, fingerprint, public_key, "
                "resource_group_id, created_at) VALUES (7, 'cn-hangzhou', 'k', 'f', 'p', '', :now)"
            ),
            {"now": now},
        )
    db.migrate()
    with db.engine.connect() as connection:
        groups = connection.execute(
            text("SELECT id, is_default FROM resource_groups WHERE account_id = 7")
        ).all()
        [(group_id, is_default)] = groups
        assert is_default and group_id.startswith("rg-acfm")
        assert connection.execute(text("SELECT resource_group_id FROM key_pairs")).scalar() == group_id
    db.dispose()
