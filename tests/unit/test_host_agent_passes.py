"""The host loop passes again as soon as a key that a pass had to skip (it was running) is done:
a change notified during a long reconcile is not held back until the next interval."""

from __future__ import annotations

import threading

from .host_world import HostWorld


def test_a_key_skipped_while_it_ran_wakes_the_loop_when_it_is_done(world: HostWorld) -> None:
    agent = world.agent
    release = threading.Event()

    def long_reconcile() -> None:
        release.wait(10)

    first = agent._submit("vpc-net", long_reconcile)
    assert first is not None
    agent._wake.clear()
    assert agent._submit("vpc-net", lambda: None) is None  # busy: this pass skips it
    release.set()
    first.result(timeout=10)
    assert agent._wake.is_set()  # the loop passes again at once, not after its interval

    agent._wake.clear()
    done = agent._submit("vpc-net", lambda: None)
    assert done is not None
    done.result(timeout=10)
    assert not agent._wake.is_set()  # nothing was skipped: no extra pass
