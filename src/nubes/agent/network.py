"""The network part of the host agent: reconcile the store's VPCs onto the host.

A change in the API names the VPC it touched (`notify`); the agent then re-syncs that VPC
at once. Every `full_interval` seconds, and on start, it syncs everything, which also
removes what the store no longer has and repairs what was changed behind its back."""

from __future__ import annotations

import logging
import threading
import time

from nubes.agent.vpcnet import desired_vpcs
from nubes.domain.netstate import generations
from nubes.domain.vpcs import Vpcs
from nubes.drivers.network.base import NetworkDriver
from nubes.guest.metadata import MetadataService
from nubes.store.db import Database

log = logging.getLogger("nubes.agent.network")


class NetworkAgent:
    def __init__(
        self, db: Database, driver: NetworkDriver, vpcs: Vpcs, host_netns_prefix: str, full_interval: float = 10.0,
        metadata: MetadataService | None = None,
    ) -> None:
        self._db = db
        self._driver = driver
        self._vpcs = vpcs
        self._prefix = host_netns_prefix
        self._full_interval = full_interval
        self._metadata = metadata
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        # The driver is not thread-safe; the compute agent also asks for syncs (before a VM starts).
        self._driver_lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, int] = {}
        self.syncs = 0  # completed reconcile passes, for tests and benchmarks
        self.poll_interval = 0.5

    def notify(self, vpc_id: str) -> None:
        with self._lock:
            self._dirty.add(vpc_id)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nubes-network-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._metadata is not None:
            self._metadata.close()

    def _poll_generations(self) -> None:
        """Changes made by other processes (admin commands, other API servers) show up here."""
        current = generations(self._db)
        changed = {vpc_id for vpc_id, gen in current.items() if self._seen.get(vpc_id) != gen}
        changed |= set(self._seen) - set(current)
        self._seen = current
        if changed:
            with self._lock:
                self._dirty |= changed

    def reconcile_all(self) -> None:
        with self._driver_lock:
            self._reconcile_all()

    def _reconcile_all(self) -> None:
        desired = desired_vpcs(self._db, self._prefix)
        self._driver.sync(desired)
        if self._metadata is not None:
            self._metadata.retain({v.vpc_id for v in desired})
            for vpc in desired:
                self._metadata.ensure(vpc.vpc_id, self._driver.open_metadata_socket)
        self._vpcs.mark_available([v.vpc_id for v in desired])
        self.syncs += 1

    def reconcile(self, vpc_ids: set[str]) -> None:
        """Sync these VPCs now (callable from any thread)."""
        with self._driver_lock:
            self._reconcile(vpc_ids)

    def _reconcile(self, vpc_ids: set[str]) -> None:
        desired = {v.vpc_id: v for v in desired_vpcs(self._db, self._prefix, sorted(vpc_ids))}
        for vpc_id in sorted(vpc_ids):
            if vpc_id in desired:
                self._driver.sync_vpc(desired[vpc_id])
                if self._metadata is not None:
                    self._metadata.ensure(vpc_id, self._driver.open_metadata_socket)
            else:
                if self._metadata is not None:
                    self._metadata.remove(vpc_id)
                self._driver.remove_vpc(vpc_id)
        self._vpcs.mark_available(sorted(desired))
        self.syncs += 1

    def _run(self) -> None:
        last_full = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now - last_full >= self._full_interval:
                    with self._lock:
                        self._dirty.clear()
                    self._seen = generations(self._db)
                    self.reconcile_all()
                    last_full = now
                else:
                    self._poll_generations()
                    with self._lock:
                        dirty, self._dirty = self._dirty, set()
                    if dirty:
                        try:
                            self.reconcile(dirty)
                        except Exception:
                            with self._lock:
                                self._dirty |= dirty  # try again on the next pass
                            raise
            except Exception:
                log.exception("network reconcile failed; retrying")
                self._stop.wait(1.0)
            timeout = min(self.poll_interval, max(0.05, self._full_interval - (time.monotonic() - last_full)))
            self._wake.wait(timeout)
            self._wake.clear()
