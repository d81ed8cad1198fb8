"""The console's remote connection page (issue 14, VNC) against a live emulator, over plain HTTP:
the page and its link, noVNC's modules served from the package (every import of the page's
script reachable, nothing outside static/), a fresh one-time URL per Connect (CSRF-checked,
refused for a stopped instance with the API's code), and the VNC password form."""

from __future__ import annotations

import json
import posixpath
import re

from alibabacloud_ecs20140526 import models as em

from ..api.test_vnc_api import close_code, session
from ..conftest import LiveServer
from .test_console import Browser, fetch
from .test_console_instances import error_of, running

IMPORT = re.compile(
    r'^\s*(?:import|export)\b[^"\';]*?from\s+["\'](\.[^"\']+)["\']|^\s*import\s+["\'](\.[^"\']+)["\']',
    re.MULTILINE,
)


def test_page_link_and_password_form(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.59.0.0/16")
    browser = Browser(live, fresh_key)
    here = f"/console/instances/{instance_id}/vnc"
    assert f'href="{here}"' in browser.get(f"/console/instances/{instance_id}").text
    page = browser.get(here)
    assert page.status == 200
    for element in ('id="vnc-screen"', 'id="vnc-status"', 'id="vnc-connect"', 'id="vnc-password-form"'):
        assert element in page.text
    assert '<script type="module" src="/console/static/vnc.js">' in page.text
    assert "<script>" not in page.text  # the CSP allows no inline script

    bad = browser.post(f"{here}/password", {"csrf_token": browser.token, "vnc_password": "abc123"})
    assert bad.status == 400
    assert error_of(bad.text)[0] == "IncorrectVncPassword.Malformed"
    good = browser.post(f"{here}/password", {"csrf_token": browser.token, "vnc_password": "Abc123"})
    assert good.status == 303 and good.headers["location"] == f"{here}?changed=1"
    assert 'id="vnc-notice"' in browser.get(f"{here}?changed=1").text
    assert browser.post(f"{here}/password", {"vnc_password": "Abc123"}).status == 403  # no CSRF token

    other = Browser(live, live.create_account("vnc-other"))
    assert error_of(other.get(here).text)[0] == "InvalidInstanceId.NotFound"
    del lab


def test_connect_asks_for_a_fresh_one_time_url(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.56.0.0/16")
    browser = Browser(live, fresh_key)
    url = f"/console/instances/{instance_id}/vnc/url"
    password = {"csrf_token": browser.token, "vnc_password": "Abc123"}
    assert browser.post(f"/console/instances/{instance_id}/vnc/password", password).status == 303
    assert browser.post(url, {}).status == 403  # no CSRF token
    first = browser.post(url, {"csrf_token": browser.token})
    assert first.status == 200 and first.headers["content-type"].startswith("application/json")
    path = json.loads(first.text)["path"]
    assert path.startswith("/vnc/websocket?s=")
    second = json.loads(browser.post(url, {"csrf_token": browser.token}).text)["path"]
    assert second != path
    assert session(f"ws://{live.endpoint}{path}", "Abc123") == (2, 3)  # the emulator's stand-in display
    assert close_code(f"ws://{live.endpoint}{path}") == 1008  # used
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    refused = browser.post(url, {"csrf_token": browser.token})
    assert refused.status == 403
    assert json.loads(refused.text)["Code"] == "IncorrectInstanceStatus"
    assert "is Stopped" in browser.get(f"/console/instances/{instance_id}/vnc").text


def test_novnc_modules_are_served_and_nothing_outside_static(live: LiveServer) -> None:
    seen: set[str] = set()
    todo = ["/console/static/vnc.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        answer = fetch(live, "GET", path)
        assert answer.status == 200, path
        assert answer.headers["content-type"].startswith("text/javascript"), path
        for a, b in IMPORT.findall(answer.text):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), a or b)))
    assert "/console/static/novnc/core/rfb.js" in seen
    assert "/console/static/novnc/vendor/pako/lib/zlib/inflate.js" in seen
    for outside in (
        "/console/static/novnc/../../app.py",
        "/console/static/novnc/%2e%2e/%2e%2e/app.py",
        "/console/static/novnc/.hidden.js",
        "/console/static/novnc/LICENSE.txt",
        "/console/static//etc/passwd.js",
    ):
        assert fetch(live, "GET", outside).status == 404, outside
