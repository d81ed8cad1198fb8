"""Helpers for testing the console's resource pages over HTTP: POST a form with the session's
CSRF token, expect its 303 back or the page's 200, read the rows' data-id, and check that a
refusal shown on a page is the one the API itself gives the same request."""

from __future__ import annotations

import re

import pytest

from nubes.client import ClientError, Credentials, call

from ..api.test_vpc_api import REGION
from ..conftest import LiveServer
from .test_console import Answer, Browser
from .test_console_instances import error_of


def post(browser: Browser, path: str, **form: str) -> Answer:
    return browser.post(path, {"csrf_token": browser.token, **form})


def created(browser: Browser, path: str, back: str, **form: str) -> None:
    """POST a create/delete form the API accepts: a 303 back to its page."""
    answer = post(browser, path, **form)
    assert answer.status == 303, answer.text
    assert answer.headers["location"] == back


def shown(browser: Browser, path: str) -> str:
    """A page that renders (200), its HTML."""
    answer = browser.get(path)
    assert answer.status == 200, answer.text
    return answer.text


def ids(page: str, kind: str) -> list[str]:
    return re.findall(rf'class="{kind}" data-id="([^"]+)"', page)


class Signed(Browser):
    """A signed-in session that also knows its AccessKey, to send the API the same requests."""

    def __init__(self, live: LiveServer, key: tuple[str, str]) -> None:
        super().__init__(live, key)
        self.key = key


def refused_alike(
    browser: Signed, path: str, action: tuple[str, str], params: dict[str, str], **extra: dict[str, str]
) -> Answer:
    """POST a form the API refuses: the page shows the Code, with the HTTP status, that the API
    itself answers the same request (`params`, plus extra["form"] to the form only and
    extra["api"] to the API only, sent straight to it with nubes.client)."""
    answer = post(browser, path, **params, **extra.get("form", {}))
    creds = Credentials(browser.live.endpoint, REGION, *browser.key)
    with pytest.raises(ClientError) as info:
        call(creds, action[0], action[1], {"RegionId": REGION, **params, **extra.get("api", {})})
    assert (answer.status, error_of(answer.text)[0]) == (info.value.http_status, info.value.code), answer.text
    return answer
