"""What an action receives besides its parameters: who calls, and the services it may use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nubes.domain.accounts import Principal
from nubes.domain.common import Scope
from nubes.domain.regions import require_region
from nubes.domain.services import Services


@dataclass(frozen=True)
class ActionContext:
    request_id: str
    principal: Principal
    services: Services
    product: str
    action: str
    # The request's parameters as sent (wire names and strings), for the actions that keep them
    # as given: a launch template's version stores what it was created with.
    wire: Mapping[str, str] = field(default_factory=dict)
    # The Host the request was sent to, for URLs back to this server (DescribeInstanceVncUrl).
    host: str = ""

    def scope(self, region_id: str) -> Scope:
        """The caller's resources in a region (which must exist)."""
        require_region(self.services.catalog, region_id)
        return Scope(self.principal.account_id, region_id)
