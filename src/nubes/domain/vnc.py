"""VNC access to an instance's display: ModifyInstanceVncPasswd and DescribeInstanceVncUrl.

The password (6 characters: upper-case and lower-case letters and digits, as ECS requires) is
kept with the instance. A VncUrl carries a one-time ticket, valid TICKET_LIFETIME seconds (ECS:
15 s): the API writes it, the agent of the instance's host (told at once, like a screenshot)
gives the VM's VNC server the instance's password and answers where that server listens; the
API waits for that answer, so the password the URL is used with is the newest one (ECS: on an
I/O optimized instance a new password takes effect at once). Until a password is set the agent
gives the server a random one: nobody can log on without a password the owner chose. The
websocket proxy (nubes.api.vnc) redeems the ticket once, while the instance is Running."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import as_utc
from nubes.domain import instance_states as states
from nubes.domain.common import Scope, owned
from nubes.domain.monitoring import AgentErrands, own_session
from nubes.store.models import Instance, VncTicket

PASSWORD = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9]{6}$")
TICKET_LIFETIME = timedelta(seconds=15)
ANSWER_POLL = 0.05
# Statuses in which the password may change (taking effect at the next connection).
PASSWORD_STATUSES = frozenset({states.RUNNING, states.STOPPED})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DisplayWanted:
    """A ticket the agent answers: the VM's VNC server gets `password` and tells its address."""

    token_hash: str
    instance_id: str
    password: str  # "" = none set: the agent uses a random one


@dataclass(frozen=True)
class Display:
    """Where a redeemed ticket's VNC server listens, and the instance's VNC password (which only
    the emulator's stand-in server needs: a real one was given it by the agent)."""

    address: str
    password: str


class VncConsoles(AgentErrands):
    def _instance(self, s: Session, account_id: int, region_id: str, instance_id: str) -> Instance:
        return owned(
            s,
            Instance,
            Scope(account_id, region_id),
            instance_id,
            "Instance",
            usable=lambda i: i.desired != states.WANT_DELETED,
        )

    def set_password(self, account_id: int, region_id: str, instance_id: str, password: str) -> None:
        if not PASSWORD.match(password):
            raise errors.incorrect_vnc_password_malformed()
        with own_session(self._db) as s:
            instance = self._instance(s, account_id, region_id, instance_id)
            if instance.status not in PASSWORD_STATUSES:
                raise errors.incorrect_instance_status(
                    "The current status of the resource does not support this operation."
                )
            instance.vnc_password = password

    def issue(self, account_id: int, region_id: str, instance_id: str) -> str:
        """A one-time token for the Running instance's display, once its host's agent has given
        the VNC server the current password."""
        token = secrets.token_urlsafe(24)
        digest = token_hash(token)
        now = self._clock.now()
        # Outside the request's unit of work: the agent must see the ticket before the action ends.
        with own_session(self._db) as s:
            instance = self._instance(s, account_id, region_id, instance_id)
            if instance.status != states.RUNNING:
                raise errors.incorrect_instance_status(
                    "The current status of the resource does not support this operation."
                )
            s.execute(delete(VncTicket).where(VncTicket.expires_at < now))  # spent or never used
            s.add(VncTicket(token_hash=digest, instance_id=instance.id, expires_at=now + TICKET_LIFETIME))
            found_id = instance.id

        def opened(s: Session) -> str | None:
            ticket = s.get(VncTicket, digest)
            if ticket is None:  # the instance went away meanwhile
                raise errors.invalid_instance_id_not_found(
                    f"The specified instance {found_id!r} does not exist."
                )
            if ticket.answered_at is None:
                return None
            if not ticket.display:
                raise errors.service_unavailable(f"The VNC display is unavailable: {ticket.error}")
            return token

        return self._await_answer(
            found_id, opened, ANSWER_POLL, "The instance's host did not open its VNC display in time."
        )

    def redeem(self, token: str) -> Display | None:
        """The display of a valid ticket, using it up; None when the ticket is unknown, used,
        expired, or its instance no longer Running."""
        now = self._clock.now()
        with own_session(self._db) as s:
            ticket = s.get(VncTicket, token_hash(token))
            if ticket is None or ticket.used_at is not None or not ticket.display:
                return None
            if as_utc(ticket.expires_at) <= now:
                return None
            instance = s.get(Instance, ticket.instance_id)
            if instance is None or instance.status != states.RUNNING:
                return None
            ticket.used_at = now
            return Display(ticket.display, instance.vnc_password)

    # ---- the agent's side ----------------------------------------------------------------------

    def wanted(self, host_id: str) -> list[DisplayWanted]:
        """The tickets of this host's instances waiting for the agent's answer."""
        with self._db.session() as s:
            rows = s.execute(
                select(VncTicket.token_hash, VncTicket.instance_id, Instance.vnc_password)
                .join(Instance, Instance.id == VncTicket.instance_id)
                .where(Instance.host_id == host_id, VncTicket.answered_at.is_(None))
            )
            return [DisplayWanted(digest, instance_id, password) for digest, instance_id, password in rows]

    def answer(self, digest: str, display: str, error: str = "") -> None:
        with self._db.session() as s:
            ticket = s.get(VncTicket, digest)
            if ticket is not None and ticket.answered_at is None:
                ticket.display, ticket.error, ticket.answered_at = display, error[:256], self._clock.now()


__all__ = ["PASSWORD", "TICKET_LIFETIME", "Display", "DisplayWanted", "VncConsoles", "token_hash"]
