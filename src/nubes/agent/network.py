"""The network part of the host agent: reconcile the store's VPCs onto the host.

A change in the API names the VPC it touched (`notify`); the host loop's next pass then
re-syncs that VPC. Every `full_interval` seconds, and on the first pass, it syncs everything,
which also removes what the store no longer has and repairs what was changed behind its back.
Changes made by other processes show up as bumped generations in the store, polled each pass."""

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

RETRY_AFTER = 1.0  # seconds without a reconcile after one failed


class NetworkAgent:
    def __init__(
        self,
        db: Database,
        driver: NetworkDriver,
        vpcs: Vpcs,
        host_netns_prefix: str,
        full_interval: float = 10.0,
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
        # The driver is not thread-safe; the compute part also asks for syncs (before a VM starts).
        self._driver_lock = threading.RLock()
        self._seen: dict[str, int] = {}
        self._last_full: float | None = None  # time.monotonic() of the last full sync
        self._not_before = 0.0
        self.syncs = 0  # completed reconcile passes, for tests and benchmarks

    # ---- what the compute part needs -------------------------------------------------------

    def tap_name(self, port_id: str) -> str:
        return self._driver.tap_name(port_id)

    def netns_name(self, vpc_id: str) -> str:
        return self._driver.netns_name(vpc_id)

    def sync(self, vpc_id: str) -> None:
        """Sync one VPC now (its taps exist once this returns)."""
        self.reconcile({vpc_id})

    # ---- the pass --------------------------------------------------------------------------

    def notify(self, vpc_id: str) -> None:
        """The VPC changed: the next pass syncs it."""
        with self._lock:
            self._dirty.add(vpc_id)

    def pass_once(self) -> None:
        """A full sync when one is due, else the VPCs that changed (told, or seen in the store)."""
        now = time.monotonic()
        if now < self._not_before:
            return
        try:
            if self._last_full is None or now - self._last_full >= self._full_interval:
                with self._lock:
                    self._dirty.clear()
                self._seen = generations(self._db)
                self.reconcile_all()
                self._last_full = now
            else:
                self._poll_generations()
                with self._lock:
                    dirty, self._dirty = self._dirty, set()
                if dirty:
                    try:
                        self.reconcile(dirty)
                    except Exception:
                        with self._lock:
                            self._dirty |= dirty  # try again on a later pass
                        raise
        except Exception:
            log.exception("network reconcile failed; retrying")
            self._not_before = time.monotonic() + RETRY_AFTER

    def close(self) -> None:
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
        # A VPC is notified too when a public address of it changes (an EIP associated, a public
        # IP given or released, a bandwidth changed): desired_vpcs hands the VPC's PublicAddress
        # rows with a plugged-in interface to the driver (`VpcNet.public`), which programs the
        # uplink's 1:1 NAT of each (see drivers/network/linux.py and nft.py).
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
