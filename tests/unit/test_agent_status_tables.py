"""The agent moves statuses only through the state tables: every instance step goes through
`instance_states.agent_step` (AGENT_STEPS), every disk move through `disk_states.agent_move`
(AGENT_MOVES). A step a table lacks is refused loudly (logged as a bug, raised, the status
left as it was), and every step the agent takes in a life of instances and disks is in them."""

from __future__ import annotations

import logging

import pytest

from nubes.domain import disk_states as ds
from nubes.domain import instance_states as states
from nubes.domain.state_tables import IllegalStatusMove

# ---- a step the table lacks ---------------------------------------------------------------------


def test_a_step_the_instance_table_lacks_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert states.agent_step("i-1", states.STARTING, "guest_up") == states.RUNNING
    with caplog.at_level(logging.ERROR), pytest.raises(IllegalStatusMove, match="Running -> built_running"):
        states.agent_step("i-1", states.RUNNING, "built_running")
    assert "BUG" in caplog.text and "i-1" in caplog.text


def test_a_move_the_disk_table_lacks_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert ds.agent_move("d-1", ds.ATTACHING, ds.IN_USE) == ds.IN_USE
    assert ds.agent_move("d-1", ds.IN_USE, ds.IN_USE) == ds.IN_USE  # staying is no move
    for status, to in ((ds.AVAILABLE, ds.IN_USE), (ds.IN_USE, ds.DETACHING), (ds.AVAILABLE, ds.CREATING)):
        with caplog.at_level(logging.ERROR), pytest.raises(IllegalStatusMove):
            ds.agent_move("d-1", status, to)
    assert caplog.text.count("BUG") == 3
