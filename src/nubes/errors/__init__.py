"""Every ECS error code nubes answers with, as a named constructor; any layer raises them.

A failure a client can see is an ApiError: a code, an HTTP status and a message. Anything
else escaping an action is a bug and is answered as InternalError (500).

Naming: a constructor is the snake_case of its code, dots as underscores and a run of
capitals as one word ("IncorrectInstanceStatus" -> incorrect_instance_status,
"InvalidVSwitchId.IpNotEnough" -> invalid_vswitch_id_ip_not_enough). A code built at run
time has one constructor named for the code without its varying part, which it takes as
its first argument ("Invalid<Kind>Id.NotFound" -> invalid_id_not_found(kind, ...)); the
sub-codes of MissingParameter and DependencyViolation are made that way too. A constructor
takes the message, with ECS's text as the default where that is fixed, and has the code's
HTTP status; `http_status` is a parameter only where ECS answers the code with several.

The package imports nothing from the rest of nubes; the wire rendering of an ApiError is nubes.api.app's."""

from __future__ import annotations

from nubes.errors.base import ApiError as ApiError
from nubes.errors.compute import *  # noqa: F403
from nubes.errors.network import *  # noqa: F403
from nubes.errors.requests import *  # noqa: F403
from nubes.errors.storage import *  # noqa: F403
