"""The timed part of the host agent: what comes due with the clock, looked at on every pass.
Instances whose AutoReleaseTime has come are deleted, and automatic snapshot policies fire (and
drop the snapshots past their retention), and instance system events come due (simulated ones
are carried out, redeploys finish). Release and events only ask for power actions, and each
policy time point is claimed once (compare-and-set), so several hosts may do the same."""

from __future__ import annotations

from nubes.clock import Clock
from nubes.domain.auto_snapshot_policies import AutoSnapshotPolicies
from nubes.domain.instances import Instances
from nubes.domain.system_events import SystemEvents


class Timers:
    def __init__(
        self,
        clock: Clock,
        instances: Instances,
        policies: AutoSnapshotPolicies,
        events: SystemEvents | None = None,
    ) -> None:
        self._clock = clock
        self._instances = instances
        self._policies = policies
        self._events = events

    def pass_once(self) -> None:
        self._instances.release_due()
        self._policies.fire_due(self._clock.now())
        if self._events is not None:
            self._events.fire_due()
