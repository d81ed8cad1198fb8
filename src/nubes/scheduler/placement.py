"""Where an instance runs: filters decide which hosts can take it, weighers order the rest,
and a random pick among the best few spreads concurrent requests. Pure functions of state."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HostState:
    host_id: str
    zones: frozenset[str] | None  # None: the host serves every zone (a single-host cloud)
    vcpus: int
    memory_mib: int
    cpu_overcommit: float
    memory_overcommit: float
    used_vcpus: int = 0
    used_memory_mib: int = 0
    # deployment set id -> {group number -> instances of that set on this host}
    deployment_sets: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_overcommit - self.used_vcpus

    @property
    def free_memory_mib(self) -> float:
        return self.memory_mib * self.memory_overcommit - self.used_memory_mib

    def with_instance(self, request: PlacementRequest) -> HostState:
        sets = {k: dict(v) for k, v in self.deployment_sets.items()}
        if request.deployment_set_id:
            groups = sets.setdefault(request.deployment_set_id, {})
            groups[request.group_no] = groups.get(request.group_no, 0) + 1
        return replace(
            self,
            used_vcpus=self.used_vcpus + request.vcpus,
            used_memory_mib=self.used_memory_mib + request.memory_mib,
            deployment_sets=sets,
        )


@dataclass(frozen=True)
class PlacementRequest:
    zone_id: str
    vcpus: int
    memory_mib: int
    deployment_set_id: str = ""
    strategy: str = ""  # Availability | AvailabilityGroup | LowLatency
    group_no: int = 1


Filter = Callable[[HostState, PlacementRequest], bool]
Weigher = Callable[[HostState, PlacementRequest], float]


def zone_filter(host: HostState, request: PlacementRequest) -> bool:
    return host.zones is None or request.zone_id in host.zones


def capacity_filter(host: HostState, request: PlacementRequest) -> bool:
    return host.free_vcpus >= request.vcpus and host.free_memory_mib >= request.memory_mib


def deployment_set_filter(host: HostState, request: PlacementRequest) -> bool:
    """Availability: at most one instance of the set per host. AvailabilityGroup: instances of
    one group on different hosts. LowLatency: no constraint (a weigher draws them together)."""
    groups = host.deployment_sets.get(request.deployment_set_id, {}) if request.deployment_set_id else {}
    if request.strategy == "Availability":
        return sum(groups.values()) == 0
    if request.strategy == "AvailabilityGroup":
        return groups.get(request.group_no, 0) == 0
    return True


FILTERS: tuple[Filter, ...] = (zone_filter, capacity_filter, deployment_set_filter)


def spread(host: HostState, request: PlacementRequest) -> float:
    """Prefer the host with the most room left (relative, CPU and memory alike)."""
    cpu = host.free_vcpus / max(1.0, host.vcpus * host.cpu_overcommit)
    memory = host.free_memory_mib / max(1.0, host.memory_mib * host.memory_overcommit)
    return cpu + memory


def pack(host: HostState, request: PlacementRequest) -> float:
    """Prefer the fullest host that still fits, to keep others free."""
    return -spread(host, request)


def low_latency(host: HostState, request: PlacementRequest) -> float:
    if request.strategy != "LowLatency" or not request.deployment_set_id:
        return 0.0
    return 10.0 * sum(host.deployment_sets.get(request.deployment_set_id, {}).values())


WEIGHERS: dict[str, tuple[Weigher, ...]] = {"spread": (spread, low_latency), "pack": (pack, low_latency)}


class NoHostFound(Exception):
    """No host passes the filters: ECS answers OperationDenied.NoStock."""


def place(
    request: PlacementRequest,
    hosts: Sequence[HostState],
    policy: str = "spread",
    best_of: int = 2,
    rng: random.Random | None = None,
) -> HostState:
    candidates = [h for h in hosts if all(f(h, request) for f in FILTERS)]
    if not candidates:
        raise NoHostFound(request.zone_id)
    weighers = WEIGHERS[policy]
    ranked = sorted(candidates, key=lambda h: sum(w(h, request) for w in weighers), reverse=True)
    if request.strategy == "LowLatency":
        best_of = 1  # together means the one best host, not a random one of the best few
    return (rng or random.Random()).choice(ranked[: max(1, best_of)])


def place_all(
    requests: Sequence[PlacementRequest],
    hosts: Sequence[HostState],
    policy: str = "spread",
    rng: random.Random | None = None,
) -> list[str]:
    """Place several instances at once, each seeing the room the previous ones took.
    All or nothing: NoHostFound if any one does not fit."""
    state = {h.host_id: h for h in hosts}
    chosen = []
    for request in requests:
        host = place(request, list(state.values()), policy, rng=rng)
        state[host.host_id] = host.with_instance(request)
        chosen.append(host.host_id)
    return chosen
