"""CSRF protection: every POST carries a token the server gave the page that holds the form.

Signed-in forms carry their session's token. The sign-in form, before any session, is a
double submit: a random token both in a short-lived cookie and in the form, compared on POST
(another site can neither read nor set the cookie, which is SameSite=Strict besides)."""

from __future__ import annotations

import hmac
import secrets

SIGNIN_COOKIE = "nubes_signin"
SIGNIN_SECONDS = 600


def new_token() -> str:
    return secrets.token_urlsafe(32)


def valid(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
