"""Throttling (token buckets per account and action) and SignatureNonce memory, with injected clocks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from nubes.api.auth import MAX_SKEW, Authenticator
from nubes.api.nonce_batch import NonceBatch
from nubes.api.request import build_request
from nubes.api.signing import sign_v1
from nubes.api.throttle import Throttle
from nubes.clock import ManualClock
from nubes.domain.accounts import Accounts, KeyRecord, Principal
from nubes.domain.nonces import GROUP_MAX, NonceClaim, SignatureNonces, nonce_digest
from nubes.errors import ApiError
from nubes.store.db import Database
from nubes.store.models import SignatureNonce

ACCOUNT_A = 1
ACCOUNT_B = 2


class FakeMonotonic:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(throttle: Throttle, account: int, action: str) -> int:
    """Admit requests until one is refused; return how many got through."""
    admitted = 0
    while throttle.admit(account, action) == 0:
        admitted += 1
        assert admitted < 10_000, "the bucket never ran dry"
    return admitted


# ---- throttle ----------------------------------------------------------------------------


def test_burst_is_admitted_then_refused() -> None:
    throttle = Throttle(rate=1, burst=5, monotonic=FakeMonotonic())
    assert [throttle.admit(ACCOUNT_A, "DescribeRegions") for _ in range(5)] == [0] * 5
    assert throttle.admit(ACCOUNT_A, "DescribeRegions") >= 1


def test_tokens_refill_at_the_rate() -> None:
    clock = FakeMonotonic()
    throttle = Throttle(rate=2, burst=4, monotonic=clock)
    assert drain(throttle, ACCOUNT_A, "RunInstances") == 4
    clock.advance(1.0)  # two tokens back
    assert drain(throttle, ACCOUNT_A, "RunInstances") == 2
    clock.advance(0.5)  # one token back
    assert drain(throttle, ACCOUNT_A, "RunInstances") == 1


def test_refill_never_exceeds_the_burst() -> None:
    clock = FakeMonotonic()
    throttle = Throttle(rate=10, burst=3, monotonic=clock)
    drain(throttle, ACCOUNT_A, "X")
    clock.advance(3600)
    assert drain(throttle, ACCOUNT_A, "X") == 3


@pytest.mark.parametrize(("rate", "wait"), [(1.0, 1), (0.5, 2), (0.1, 10), (100.0, 1)])
def test_retry_after_is_whole_seconds_until_the_next_token(rate: float, wait: int) -> None:
    clock = FakeMonotonic()
    throttle = Throttle(rate=rate, burst=1, monotonic=clock)
    assert throttle.admit(ACCOUNT_A, "X") == 0
    assert throttle.admit(ACCOUNT_A, "X") == wait


def test_retry_after_shrinks_as_tokens_refill() -> None:
    clock = FakeMonotonic()
    throttle = Throttle(rate=0.1, burst=1, monotonic=clock)
    throttle.admit(ACCOUNT_A, "X")
    clock.advance(4)
    assert throttle.admit(ACCOUNT_A, "X") == 6
    clock.advance(5.5)
    assert throttle.admit(ACCOUNT_A, "X") == 1
    clock.advance(0.5)
    assert throttle.admit(ACCOUNT_A, "X") == 0


def test_refused_requests_do_not_use_tokens() -> None:
    clock = FakeMonotonic()
    throttle = Throttle(rate=1, burst=1, monotonic=clock)
    throttle.admit(ACCOUNT_A, "X")
    for _ in range(50):
        assert throttle.admit(ACCOUNT_A, "X") == 1
    clock.advance(1)
    assert throttle.admit(ACCOUNT_A, "X") == 0


@given(
    rate=st.floats(min_value=0.01, max_value=1000, allow_nan=False),
    burst=st.integers(min_value=1, max_value=20),
    elapsed=st.floats(min_value=0, max_value=5, allow_nan=False),
)
def test_waiting_the_advised_seconds_is_enough(rate: float, burst: int, elapsed: float) -> None:
    clock = FakeMonotonic()
    throttle = Throttle(rate=rate, burst=burst, monotonic=clock)
    for _ in range(burst):
        throttle.admit(ACCOUNT_A, "X")
    clock.advance(elapsed)
    wait = throttle.admit(ACCOUNT_A, "X")
    if wait:
        assert isinstance(wait, int) and wait >= 1
        clock.advance(wait)
        assert throttle.admit(ACCOUNT_A, "X") == 0


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_zero_or_less_switches_throttling_off(rate: float) -> None:
    throttle = Throttle(rate=rate, burst=1, monotonic=FakeMonotonic())
    assert all(throttle.admit(ACCOUNT_A, "X") == 0 for _ in range(5000))


def test_burst_below_one_still_admits_one_request() -> None:
    throttle = Throttle(rate=1, burst=0, monotonic=FakeMonotonic())
    assert throttle.admit(ACCOUNT_A, "X") == 0
    assert throttle.admit(ACCOUNT_A, "X") == 1


def test_buckets_are_per_account_and_per_action() -> None:
    throttle = Throttle(rate=1, burst=2, monotonic=FakeMonotonic())
    assert drain(throttle, ACCOUNT_A, "CreateKeyPair") == 2
    assert drain(throttle, ACCOUNT_A, "DescribeKeyPairs") == 2
    assert drain(throttle, ACCOUNT_B, "CreateKeyPair") == 2
    assert throttle.admit(ACCOUNT_A, "CreateKeyPair") >= 1


# ---- nonces ------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
WINDOW = 900


@pytest.fixture(scope="module")
def nonce_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One migrated store for the module; each test uses keys of its own."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('nonces') / 'nubes.db'}")
    db.migrate()
    yield db
    db.dispose()


def fresh_key() -> str:
    return f"LTAI{uuid.uuid4().hex[:12]}"


def test_nonce_reuse_within_the_window_is_refused(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db, timedelta(seconds=WINDOW)), fresh_key()
    assert cache.use(key, "n-1", T0)
    assert not cache.use(key, "n-1", T0)
    assert not cache.use(key, "n-1", T0 + timedelta(seconds=WINDOW - 1))
    assert not cache.use(key, "n-1", T0 + timedelta(seconds=WINDOW))


@given(start=st.integers(min_value=0, max_value=10**6), offset=st.integers(min_value=0, max_value=WINDOW))
def test_nonce_is_remembered_for_the_whole_window(nonce_db: Database, start: int, offset: int) -> None:
    cache, key = SignatureNonces(nonce_db, timedelta(seconds=WINDOW)), fresh_key()
    first = T0 + timedelta(seconds=start)
    assert cache.use(key, "n", first)
    assert not cache.use(key, "n", first + timedelta(seconds=offset))


def test_nonce_is_accepted_again_after_the_window(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db, timedelta(seconds=WINDOW)), fresh_key()
    assert cache.use(key, "n-1", T0)
    later = T0 + timedelta(seconds=WINDOW + 180)
    assert cache.use(key, "n-1", later)
    assert not cache.use(key, "n-1", later)


def test_nonces_are_per_access_key(nonce_db: Database) -> None:
    cache, key_a, key_b = SignatureNonces(nonce_db), fresh_key(), fresh_key()
    assert cache.use(key_a, "shared", T0)
    assert cache.use(key_b, "shared", T0)
    assert not cache.use(key_b, "shared", T0)


def test_different_nonces_of_one_key_are_independent(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db), fresh_key()
    assert all(cache.use(key, f"n-{i}", T0 + timedelta(seconds=i)) for i in range(100))


def test_key_and_nonce_do_not_run_together(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db), fresh_key()
    assert cache.use(key + "b", "c", T0)
    assert cache.use(key, "bc", T0)


def test_nonces_survive_a_restart_and_are_shared_by_processes(nonce_db: Database) -> None:
    """A new SignatureNonces on the same store (a restarted or second API process) knows them."""
    key = fresh_key()
    assert SignatureNonces(nonce_db).use(key, "n", T0)
    assert not SignatureNonces(nonce_db).use(key, "n", T0 + timedelta(minutes=5))
    second_store = Database(nonce_db.url)
    try:
        assert not SignatureNonces(second_store).use(key, "n", T0 + timedelta(minutes=20))
    finally:
        second_store.dispose()


def test_expired_nonces_are_swept_from_the_store(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db, timedelta(seconds=WINDOW)), fresh_key()
    assert cache.use(key, "old", T0)
    far = T0 + timedelta(days=400)
    assert cache.use(key, "new", far)  # the first use of a fresh instance sweeps
    with nonce_db.session() as s:
        left = s.scalar(
            select(func.count())
            .select_from(SignatureNonce)
            .where(SignatureNonce.digest == nonce_digest(key, "old"))
        )
    assert left == 0


# ---- nonces as the authenticator uses them -----------------------------------------------

SECRET = "unitTestSecret"


class OneKeyAccounts:
    """Stands in for Accounts: one active key."""

    def lookup_key(self, access_key_id: str) -> KeyRecord | None:
        return KeyRecord(access_key_id, SECRET, "Active", "root", Principal(1, "root", "1000000000000001"))


def signed_request(timestamp: datetime, nonce: str) -> bytes:
    signed = sign_v1(
        "GET",
        {"Action": "DescribeRegions", "Version": "2014-05-26"},
        "LTAIunit",
        SECRET,
        nonce=nonce,
        timestamp=timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return urlencode(signed).encode()


def authenticate(auth: Authenticator, query: bytes) -> str:
    try:
        auth.authenticate(build_request("GET", "/", query, [], b""))
    except ApiError as error:
        return str(error.code)
    return "OK"


def test_authenticator_refuses_a_replayed_request(nonce_db: Database) -> None:
    clock = ManualClock(T0)
    auth = Authenticator(cast(Accounts, OneKeyAccounts()), clock, SignatureNonces(nonce_db))
    query = signed_request(T0, "replay-1")
    assert authenticate(auth, query) == "OK"
    clock.advance(600)
    assert authenticate(auth, query) == "SignatureNonceUsed"


def test_authenticator_refuses_a_replay_for_as_long_as_the_timestamp_is_valid(nonce_db: Database) -> None:
    clock = ManualClock(T0)
    auth = Authenticator(cast(Accounts, OneKeyAccounts()), clock, SignatureNonces(nonce_db))
    stamped = T0 + MAX_SKEW - timedelta(minutes=1)  # the client's clock runs 14 minutes ahead
    query = signed_request(stamped, "replay-2")
    assert authenticate(auth, query) == "OK"
    clock.advance(20 * 60)  # still within 15 minutes of the request's Timestamp
    assert authenticate(auth, query) == "SignatureNonceUsed"


def test_a_nonce_claimed_twice_in_one_record_is_fresh_once(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db), fresh_key()
    claims = [NonceClaim(key, nonce, T0) for nonce in ("a", "a", "b", "a", "b")]
    assert cache.record(claims) == [True, False, True, False, False]
    assert cache.record([NonceClaim(key, "b", T0), NonceClaim(key, "c", T0)]) == [False, True]


def test_a_record_larger_than_one_statement_answers_every_claim(nonce_db: Database) -> None:
    cache, key = SignatureNonces(nonce_db), fresh_key()
    claims = [NonceClaim(key, f"n-{i % 300}", T0) for i in range(GROUP_MAX * 2 + 10)]
    assert cache.record(claims) == [i < 300 for i in range(len(claims))]


class CountingNonces(SignatureNonces):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.records: list[int] = []
        self.failure: Exception | None = None

    def record(self, claims: Sequence[NonceClaim]) -> list[bool]:
        self.records.append(len(claims))
        if self.failure is not None:
            raise self.failure
        return super().record(claims)


def test_the_claims_of_one_loop_turn_are_recorded_together(nonce_db: Database) -> None:
    nonces, key = CountingNonces(nonce_db), fresh_key()
    batch = NonceBatch(nonces)

    async def requests() -> list[bool]:
        answers = [batch.claim(NonceClaim(key, nonce, T0)) for nonce in ("x", "y", "x")]
        first = await asyncio.gather(*answers)
        again = await batch.claim(NonceClaim(key, "y", T0))
        return [*first, again]

    assert asyncio.run(requests()) == [True, True, False, False]
    assert nonces.records == [3, 1]


def test_a_store_failure_is_every_claim_s_answer_and_the_next_turn_recovers(nonce_db: Database) -> None:
    nonces, key = CountingNonces(nonce_db), fresh_key()
    batch = NonceBatch(nonces)
    nonces.failure = OSError("the store went away")

    async def requests() -> list[object]:
        failed = await asyncio.gather(
            *(batch.claim(NonceClaim(key, n, T0)) for n in "ab"), return_exceptions=True
        )
        nonces.failure = None
        return [*failed, await batch.claim(NonceClaim(key, "a", T0))]

    first, second, after = asyncio.run(requests())
    assert isinstance(first, OSError) and isinstance(second, OSError) and after is True
