"""The web UI on a server with users, in Chromium: pages need a session, and a signed-in user
sees only the projects it may read, exactly as the API answers it.

One server (SQLite), projects ``alpha`` (alice writes, rita reads with a password) and ``beta``
(bob); real pipelines recorded through ``rest`` stacks (as :mod:`tests.test_access_end_to_end`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.rest_server import ServerProcess
from tests.test_access_end_to_end import ENV, KEY, PASSWORD, RUN, RUN_BOB, ok, run
from tests.ui.conftest import _screenshots


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("ui-signin")
    server = ServerProcess("sqlite", tmp_path, env=ENV)
    init = run(server.home, "server", "init", "--stack", "served", "--admin", "root")
    assert init.returncode == 0, init.stderr
    (root_key,) = KEY.findall(init.stdout)
    server.start()
    admin, alice, bob = (tmp_path / name for name in ("admin", "alice", "bob"))
    keys = {"root": root_key}
    try:
        ok(admin, "login", server.url, "--stdin", "--stack", "team", stdin=root_key + "\n")
        for project in ("alpha", "beta"):
            ok(admin, "project", "create", project)
        for user, project, role in (("alice", "alpha", "write"), ("bob", "beta", "write"), ("rita", "alpha", "read")):
            password = ["--password"] if user == "rita" else []
            (keys[user],) = KEY.findall(ok(admin, "user", "create", user, *password, stdin=f"{PASSWORD}\n{PASSWORD}\n"))
            ok(admin, "project", "member", "add", project, user, "--role", role)
        for home, user, project, code in ((alice, "alice", "alpha", RUN), (bob, "bob", "beta", RUN_BOB)):
            ok(home, "login", server.url, "--stdin", "--stack", "team", stdin=keys[user] + "\n")
            ok(home, "metadata-store", "update", "team", f"--project={project}")
            done = run(home, "0.1", code=code)
            assert done.returncode == 0, done.stderr
        runs = {name: json.loads(ok(home, "run", "list", "--json")) for name, home in (("alice", alice), ("bob", bob))}
        yield {"server": server, "keys": keys, "runs": runs, "shots": _screenshots(tmp_path_factory)}
    finally:
        server.stop()


def sign_in(page: Any, url: str, **fields: str) -> None:
    for name, value in fields.items():
        page.fill(f"#{name}", value)
    page.click("form.signin button[type=submit]")


def test_pages_need_a_session_and_show_only_readable_projects(teams: dict[str, Any], page: Any) -> None:
    url, keys, runs = teams["server"].url, teams["keys"], teams["runs"]
    alice_run, bob_run = runs["alice"][0]["name"], runs["bob"][0]["name"]

    # Nobody signed in: every page sends the browser to the sign-in page, which brings it back.
    page.goto(f"{url}/ui/runs/{alice_run}")
    assert page.url.startswith(f"{url}/ui/login?next=")
    sign_in(page, url, api_key="pl_" + "0" * 32 + "_wrong")
    assert page.locator(".signin-error").inner_text() == "wrong API key, or wrong user name or password"
    sign_in(page, url, api_key=keys["alice"])
    assert page.url == f"{url}/ui/runs/{alice_run}"
    assert "Signed in as alice" in page.locator("header .who").inner_text()
    page.screenshot(path=str(teams["shots"] / "signin-alice-run.png"), full_page=True)

    # alice sees alpha's run, not beta's: bob's run page answers as a run that does not exist.
    page.goto(f"{url}/ui/runs")
    table = page.locator("main table").inner_text()
    assert alice_run in table and bob_run not in table
    hidden = page.goto(f"{url}/ui/runs/{bob_run}")
    missing = page.goto(f"{url}/ui/runs/no-such-run")
    assert hidden is not None and missing is not None and hidden.status == missing.status == 404

    # The session cookie is out of scripts' reach; signing out ends it on the server too.
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["pipeledger_session"]["httpOnly"] and cookies["pipeledger_session"]["sameSite"] == "Strict"
    page.click("form.signout button")
    assert page.url.startswith(f"{url}/ui/login")
    page.context.add_cookies([{**cookies["pipeledger_session"]}])  # the old cookie, replayed
    page.goto(f"{url}/ui/runs")
    assert page.url.startswith(f"{url}/ui/login")


def test_a_reader_signs_in_with_a_password(teams: dict[str, Any], page: Any) -> None:
    url, runs = teams["server"].url, teams["runs"]
    page.goto(f"{url}/ui/login")
    page.screenshot(path=str(teams["shots"] / "signin-page.png"), full_page=True)
    sign_in(page, url, user="rita", password="not her password")
    assert page.locator(".signin-error").is_visible()
    sign_in(page, url, user="rita", password=PASSWORD)
    assert page.url == f"{url}/ui/runs"
    table = page.locator("main table").inner_text()
    assert runs["alice"][0]["name"] in table and runs["bob"][0]["name"] not in table


def test_a_sign_out_without_the_csrf_token_is_refused(teams: dict[str, Any], page: Any) -> None:
    url, keys = teams["server"].url, teams["keys"]
    page.goto(f"{url}/ui/login")
    sign_in(page, url, api_key=keys["bob"])
    answer = page.request.post(f"{url}/ui/logout", form={"csrf_token": "forged"}, max_redirects=0)
    assert answer.status == 403
    page.goto(f"{url}/ui/runs")
    assert "Signed in as bob" in page.locator("header .who").inner_text()  # still signed in


def test_after_sign_in_only_ui_pages_are_targets(teams: dict[str, Any], page: Any) -> None:
    url, keys = teams["server"].url, teams["keys"]
    page.goto(f"{url}/ui/login?next=https%3A%2F%2Fevil.example%2F")
    sign_in(page, url, api_key=keys["alice"])
    assert page.url == f"{url}/ui/runs"
