"""The scheduler's pure parts: filters, weighers, placement of batches."""

from __future__ import annotations

import random

import pytest

from nubes.scheduler.placement import HostState, NoHostFound, PlacementRequest, place, place_all


def host(
    name: str, vcpus: int = 8, memory: int = 16384, zones: frozenset[str] | None = None, **kw: object
) -> HostState:
    return HostState(name, zones, vcpus, memory, 1.0, 1.0, **kw)  # type: ignore[arg-type]


def test_capacity_and_zone_filters() -> None:
    hosts = [host("a", zones=frozenset({"z1"})), host("b", vcpus=2, zones=frozenset({"z2"}))]
    assert place(PlacementRequest("z1", 4, 1024), hosts).host_id == "a"
    with pytest.raises(NoHostFound):
        place(PlacementRequest("z2", 4, 1024), hosts)
    with pytest.raises(NoHostFound):
        place(PlacementRequest("z3", 1, 1024), hosts)
    assert place(PlacementRequest("any", 1, 512), [host("c")]).host_id == "c"  # zones=None serves all


def test_overcommit_counts() -> None:
    h = HostState("a", None, 2, 4096, 4.0, 1.0, used_vcpus=6)
    assert place(PlacementRequest("z", 2, 1024), [h]).host_id == "a"
    with pytest.raises(NoHostFound):
        place(PlacementRequest("z", 3, 1024), [h])


def test_spread_and_pack() -> None:
    busy, idle = host("busy", used_vcpus=6, used_memory_mib=12000), host("idle")
    rng = random.Random(1)
    assert place(PlacementRequest("z", 1, 512), [busy, idle], "spread", best_of=1, rng=rng).host_id == "idle"
    assert place(PlacementRequest("z", 1, 512), [busy, idle], "pack", best_of=1, rng=rng).host_id == "busy"


def test_availability_set_puts_one_instance_per_host() -> None:
    requests = [PlacementRequest("z", 1, 512, "ds-1", "Availability") for _ in range(3)]
    chosen = place_all(requests, [host("a"), host("b"), host("c")], rng=random.Random(0))
    assert sorted(chosen) == ["a", "b", "c"]
    with pytest.raises(NoHostFound):
        place_all(requests + requests[:1], [host("a"), host("b"), host("c")])


def test_low_latency_draws_instances_together() -> None:
    requests = [PlacementRequest("z", 1, 512, "ds-2", "LowLatency") for _ in range(4)]
    chosen = place_all(requests, [host("a"), host("b")], rng=random.Random(3))
    assert len(set(chosen)) == 1


def test_batch_is_all_or_nothing() -> None:
    with pytest.raises(NoHostFound):
        place_all([PlacementRequest("z", 4, 1024)] * 3, [host("a")])
