"""The web console (issue 14's foundation) against a live emulator: sign in and out, the session
cookie, CSRF, the overview's counts and the instance list, over plain HTTP (no browser)."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from alibabacloud_ecs20140526 import models as em

from ..api.test_instances_api import Lab
from ..conftest import LiveServer


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str

    def cookies(self) -> dict[str, str]:
        """Each Set-Cookie's name and its whole line."""
        return {line.split("=", 1)[0]: line for line in self.headers.get_all("set-cookie") or []}


def fetch(
    live: LiveServer,
    method: str,
    path: str,
    form: dict[str, str] | None = None,
    cookies: str = "",
    headers: dict[str, str] | None = None,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        body = urlencode(form).encode() if form is not None else None
        all_headers = {**(headers or {}), **({"Cookie": cookies} if cookies else {})}
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read().decode())
    finally:
        conn.close()


def form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def cookie_value(line: str) -> str:
    return line.split(";", 1)[0]


class Browser:
    """A signed-in session: its cookie and the CSRF token of its forms."""

    def __init__(self, live: LiveServer, key: tuple[str, str]) -> None:
        self.live = live
        answer = sign_in(live, key)
        assert answer.status == 303, answer.text
        self.cookie = cookie_value(answer.cookies()["nubes_session"])
        self.token = form_token(self.get("/console/").text)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return fetch(self.live, "GET", path, cookies=self.cookie, headers=headers)

    def post(self, path: str, form: dict[str, str]) -> Answer:
        return fetch(self.live, "POST", path, form, cookies=self.cookie)


def sign_in(live: LiveServer, key: tuple[str, str]) -> Answer:
    form_page = fetch(live, "GET", "/console/signin")
    assert form_page.status == 200
    signin_cookie = cookie_value(form_page.cookies()["nubes_signin"])
    form = {"csrf_token": form_token(form_page.text), "access_key_id": key[0], "access_key_secret": key[1]}
    return fetch(live, "POST", "/console/signin", form, cookies=signin_cookie)


def test_wrong_secret_shows_the_api_error_and_sets_no_session(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    answer = sign_in(live, (fresh_key[0], "not-the-secret"))
    assert answer.status == 400
    assert "SignatureDoesNotMatch" in answer.text
    assert "nubes_session" not in answer.cookies()
    assert "not-the-secret" not in answer.text
    unknown = sign_in(live, ("LTAInobody000000000000", "whatever"))
    assert "InvalidAccessKeyId.NotFound" in unknown.text
    assert "nubes_session" not in unknown.cookies()


def test_right_secret_sets_a_strict_httponly_expiring_cookie(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    answer = sign_in(live, fresh_key)
    assert answer.status == 303
    assert answer.headers["location"] == "/console/"
    line = answer.cookies()["nubes_session"]
    attributes = {part.strip().split("=", 1)[0].lower(): part for part in line.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].strip() == "SameSite=Strict"
    assert int(attributes["max-age"].split("=")[1]) > 0
    assert fresh_key[1] not in line
    page = fetch(live, "GET", "/console/", cookies=cookie_value(line))
    assert page.status == 200
    assert fresh_key[0] in page.text
    assert fresh_key[1] not in page.text


def test_pages_without_a_session_send_to_sign_in(live: LiveServer) -> None:
    for path in ("/console", "/console/", "/console/instances"):
        answer = fetch(live, "GET", path)
        assert answer.status == 303
        assert answer.headers["location"] == "/console/signin"
    forged = fetch(live, "GET", "/console/", cookies="nubes_session=forged")
    assert forged.status == 303


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    browser = Browser(live, fresh_key)
    assert browser.post("/console/signout", {}).status == 403
    assert browser.post("/console/signout", {"csrf_token": "wrong"}).status == 403
    assert browser.post("/console/region", {"csrf_token": "wrong", "region": "cn-beijing"}).status == 403
    assert browser.get("/console/").status == 200  # the session is still there
    # the sign-in form: a token that does not match its cookie, or no cookie at all
    key_form = {"access_key_id": fresh_key[0], "access_key_secret": fresh_key[1]}
    no_cookie = fetch(live, "POST", "/console/signin", {"csrf_token": "x", **key_form})
    assert no_cookie.status == 403
    mismatch = fetch(
        live, "POST", "/console/signin", {"csrf_token": "x", **key_form}, cookies="nubes_signin=y"
    )
    assert mismatch.status == 403
    assert "nubes_session" not in mismatch.cookies()


def count(page: str, name: str) -> int:
    found = re.search(rf'data-count="{re.escape(name)}">(\d+)<', page)
    assert found is not None, page
    return int(found.group(1))


def test_overview_counts_and_region_switch(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    browser = Browser(live, fresh_key)
    empty = browser.get("/console/").text
    assert count(empty, "VPCs") == 0
    assert count(empty, "Running") == 0
    lab = Lab(live, fresh_key, "10.61.0.0/16")
    [instance_id] = lab.run(instance_name="web")
    assert lab.wait(instance_id, "Running") == "Running"
    page = browser.get("/console/")
    assert page.status == 200
    assert "cn-hangzhou" in page.text
    assert count(page.text, "Running") == 1
    assert count(page.text, "Stopped") == 0
    assert count(page.text, "VPCs") == 1
    assert count(page.text, "Security groups") == 1
    assert count(page.text, "Disks") == 1  # the system disk
    assert count(page.text, "Snapshots") == 0
    switched = browser.post("/console/region", {"csrf_token": browser.token, "region": "cn-beijing"})
    assert switched.status == 303
    elsewhere = browser.get("/console/").text
    assert "cn-beijing" in elsewhere
    assert count(elsewhere, "Running") == 0
    assert count(elsewhere, "VPCs") == 0


def test_instances_list_filters_by_status_and_search(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab = Lab(live, fresh_key, "10.62.0.0/16")
    [web] = lab.run(instance_name="web", tag=[em.RunInstancesRequestTag(key="tier", value="front")])
    [db] = lab.run(instance_name="db", tag=[em.RunInstancesRequestTag(key="tier", value="data")])
    for instance_id in (web, db):
        assert lab.wait(instance_id, "Running") == "Running"
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=db))
    assert lab.wait(db, "Stopped") == "Stopped"
    browser = Browser(live, fresh_key)

    def listed(**query: str) -> set[str]:
        answer = browser.get("/console/instances?" + urlencode(query))
        assert answer.status == 200
        return set(re.findall(r'class="instance" data-id="([^"]+)"', answer.text))

    assert listed() == {web, db}
    assert listed(status="Running") == {web}
    assert listed(status="Stopped") == {db}
    assert listed(q=db) == {db}
    assert listed(q="web") == {web}
    attrs = lab.ecs.describe_instance_attribute(em.DescribeInstanceAttributeRequest(instance_id=web)).body
    web_ip = attrs.vpc_attributes.private_ip_address.ip_address[0]
    assert listed(q=web_ip) == {web}
    assert listed(q="web", status="Stopped") == set()
    assert listed(q="tier=front") == {web}
    assert listed(q="tier=") == {web, db}
    assert listed(q="tier=nothing") == set()
    partial = browser.get("/console/instances?status=Running", {"HX-Request": "true"})
    assert partial.text.lstrip().startswith('<section id="instances">')
    assert "<html" not in partial.text
    assert 'class="badge badge-running"' in partial.text


def test_api_errors_show_code_and_message(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    browser = Browser(live, fresh_key)
    answer = browser.get("/console/instances?q=i-" + "x" * 70)
    assert answer.status == 200
    code = re.search(r'class="error-code">([^<]+)<', answer.text)
    message = re.search(r'class="error-message">([^<]+)<', answer.text)
    assert code is not None
    assert message is not None
    assert code.group(1) == "InvalidParameter"
    assert "InstanceIds" in message.group(1)


def test_sign_out_ends_the_session(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    browser = Browser(live, fresh_key)
    answer = browser.post("/console/signout", {"csrf_token": browser.token})
    assert answer.status == 303
    assert "Max-Age=0" in answer.cookies()["nubes_session"]
    assert browser.get("/console/").status == 303
    assert browser.get("/console/instances").status == 303


def test_htmx_is_served_from_the_package(live: LiveServer) -> None:
    answer = fetch(live, "GET", "/console/static/htmx.min.js")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert "htmx" in answer.text[:200]
    assert fetch(live, "GET", "/console/static/../app.py").status == 404
    icon = fetch(live, "GET", "/console/static/favicon.svg")  # the page's icon, not an API 400
    assert (icon.status, icon.headers["content-type"]) == (200, "image/svg+xml")
    assert 'rel="icon"' in fetch(live, "GET", "/console/signin").text


def test_the_api_is_still_served_beside_the_console(live: LiveServer) -> None:
    assert fetch(live, "GET", "/healthz").status == 200
    assert fetch(live, "GET", "/consoles").status == 400  # not the console: an API answer
    assert "MissingParameter" in fetch(live, "GET", "/consoles").text
