"""The host agent: one loop that converges this host to the store, with compute, storage,
network, timers and monitoring as peers.

Each pass runs the timers, hands the network part a reconcile (on a worker, never two at once)
and gives every instance of this host that needs work (and every lone disk with queued disk
work) one step on a worker: first the key's queued storage tasks, then the instance's next
lifecycle step. A key is never stepped twice at once, so a VM never starts or stops while one
of its disks is being worked on. A pass comes every `interval` seconds, at once when told of a
change (`notify`, `notify_network`) or when a step asks for another. The monitoring part
(nubes.agent.monitor) has two slots of its own: its samples (when due) and the screenshots
asked for, so neither waits for the other or for an instance's step."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from nubes.agent.compute import ComputeAgent
from nubes.agent.monitor import MonitorAgent
from nubes.agent.network import NetworkAgent
from nubes.agent.storage import StorageWork
from nubes.agent.timers import Timers

log = logging.getLogger("nubes.agent.host")

NETWORK_KEY = "<network>"  # the network part's slot among the instance and disk keys
MONITOR_KEY = "<monitor>"  # the monitoring samples' slot
SCREENSHOT_KEY = "<screenshots>"


class HostAgent:
    def __init__(
        self,
        compute: ComputeAgent,
        storage: StorageWork,
        network: NetworkAgent,
        timers: Timers,
        interval: float = 0.5,
        workers: int = 8,
        monitor: MonitorAgent | None = None,
    ) -> None:
        self.compute = compute
        self.monitor = monitor
        self.storage = storage
        self.network = network
        self.timers = timers
        self._interval = interval
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nubes-host")
        self._busy: set[str] = set()
        # keys a pass wanted to run while they were running: passed again as soon as they are done
        self._missed: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._looked_at_all = False  # the first pass after a start looks at every instance

    @property
    def host_id(self) -> str:
        return self.compute.host_id

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if not self.compute.known():
            self.compute.register_host()
        self.storage.recover()
        self._thread = threading.Thread(target=self._run, name="nubes-host-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.network.close()

    def notify(self, _key: str) -> None:
        """An instance or disk of the store changed: pass at once."""
        self._wake.set()

    def notify_network(self, vpc_id: str) -> None:
        """A VPC changed: sync it on the next pass, at once."""
        self.network.notify(vpc_id)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pass_once()
            except Exception:
                log.exception("host pass failed; retrying")
            self._wake.wait(self._interval)
            self._wake.clear()

    # ---- one pass --------------------------------------------------------------------------

    def pass_once(self, wait: bool = False) -> None:
        """Run the timers, then start the network's reconcile and the steps the keys of this
        host need (on workers); with `wait`, return once they are done."""
        try:
            self.timers.pass_once()
        except Exception:
            log.exception("timers failed; retrying on the next pass")
        futures = [self._submit(NETWORK_KEY, self.network.pass_once)]
        if self.monitor is not None:
            futures.append(self._submit(MONITOR_KEY, self._monitor_pass))
            futures.append(self._submit(SCREENSHOT_KEY, self._screenshot_pass))
        storage_keys = self.storage.pending_keys()
        wanted, _ = self.compute.instances_to_step(everything=not self._looked_at_all)
        keys = wanted + sorted(storage_keys - set(wanted))  # an instance's disk work, or a lone disk's
        for key in keys:
            futures.append(self._submit(key, functools.partial(self.step, key)))
        self._looked_at_all = True
        if wait:
            for future in futures:
                if future is not None:
                    future.result()

    def _submit(self, key: str, work: Callable[[], None]) -> Future[None] | None:
        """Run `work` on a worker, unless the key's slot is taken (then a pass right after it does)."""
        with self._lock:
            if key in self._busy:
                self._missed.add(key)
                return None
            self._busy.add(key)
        return self._pool.submit(self._guarded, key, work)

    def _guarded(self, key: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:
            log.exception("step for %s failed; retrying on the next pass", key)
        finally:
            with self._lock:
                self._busy.discard(key)
                missed = key in self._missed
                self._missed.discard(key)
            if missed:
                # A change notified during the work woke a pass that had to skip the key: pass
                # again now rather than after the interval (a VPC change would wait up to 0.5 s).
                self._wake.set()

    def _monitor_pass(self) -> None:
        assert self.monitor is not None
        self.monitor.sample_if_due()
        self.monitor.prune_if_due()

    def _screenshot_pass(self) -> None:
        assert self.monitor is not None
        self.monitor.take_screenshots()
        self.monitor.open_vnc_displays()  # the same kind of errand: the API waits for the answer

    def step(self, key: str) -> None:
        """The queued disk work of an instance (or a lone disk), then its next lifecycle step."""
        self.storage.run(key)
        if self.compute.step(key):
            self._wake.set()
