"""Network state in the store: which interfaces are plugged in, the namespaces of test hosts,
and the generation counters that tell agents in other processes a VPC changed. The mapping of
VPCs to the network driver's types is the agent's (nubes.agent.vpcnet)."""

from __future__ import annotations

from sqlalchemy import select

from nubes.store.db import Database
from nubes.store.models import NetworkGeneration

ATTACHED_KINDS = ("testhost", "instance")


def test_host_netns(prefix: str, eni_id: str) -> str:
    """The namespace of the test host behind an interface (for `ip netns exec`)."""
    return f"{prefix}-host-{eni_id}"


def bump_generation(db: Database, vpc_id: str) -> None:
    with db.session() as s:
        row = s.get(NetworkGeneration, vpc_id)
        if row is None:
            s.add(NetworkGeneration(vpc_id=vpc_id, generation=1))
        else:
            row.generation += 1


def generations(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {
            vpc_id: gen
            for vpc_id, gen in s.execute(select(NetworkGeneration.vpc_id, NetworkGeneration.generation))
        }
