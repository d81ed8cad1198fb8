"""The timed part of the host agent: what comes due with the clock, looked at on every pass.
Instances whose AutoReleaseTime has come are deleted, and automatic snapshot policies fire (and
drop the snapshots past their retention). Both are safe with several hosts doing the same:
release only asks for a delete, and each policy time point is claimed once (compare-and-set)."""

from __future__ import annotations

from nubes.clock import Clock
from nubes.domain.auto_snapshot_policies import AutoSnapshotPolicies
from nubes.domain.instances import Instances


class Timers:
    def __init__(self, clock: Clock, instances: Instances, policies: AutoSnapshotPolicies) -> None:
        self._clock = clock
        self._instances = instances
        self._policies = policies

    def pass_once(self) -> None:
        self._instances.release_due()
        self._policies.fire_due(self._clock.now())
