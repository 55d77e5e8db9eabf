"""Hardening: security headers on every page and API response, CSRF on callbacks, CORS,
proxies, brute force by account and by address, session fixation, idle and absolute
session timeouts, error responses without internals, and HTTPS from ``serve``."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dash
import pytest
import requests
from sqlalchemy import select, update

from app.extensions import db
from app.models import Role, User, UserSession
from tests.conftest import PASSWORD, AuthActions, wait_for
from tests.test_roles import callback_body, csrf_header

SERVER_CALLBACK = "admin-users-grid.rowData"
EVIL = "https://evil.example"
FRIEND = "https://dash.example.com"


def assert_hardened(response, where):
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert "unsafe-eval" not in policy, where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") == "same-origin", where
    assert "Strict-Transport-Security" not in headers, where  # plain HTTP
    return policy


def page_paths():
    return [
        page["path"]
        for page in dash.page_registry.values()
        if not page["module"].endswith("not_found_404")
    ]


def test_every_page_has_the_csp_and_the_other_headers(dash_app, client, auth):
    auth.login_as(Role.ADMIN)
    paths = page_paths()
    assert len(paths) >= 5
    for path in [*paths, "/no-such-page", "/logout"]:
        response = client.get(path)
        assert response.status_code in {200, 404}, path
        policy = assert_hardened(response, path)
        script_src = re.search(r"script-src ([^;]+)", policy)
        assert script_src, path
        sources = script_src.group(1).split()
        assert "'unsafe-inline'" not in sources, path
        assert any(source.startswith("'sha256-") for source in sources), path
        assert "connect-src 'self' ws://localhost:*" in policy, path


def test_the_page_policy_lists_the_hash_of_every_inline_script(dash_app, client, auth):
    import base64
    import hashlib

    auth.login_as(Role.VIEWER)
    response = client.get("/")
    html = re.sub(r"<!--.*?-->", "", response.get_data(as_text=True), flags=re.S)  # IE-only
    inline = re.findall(
        r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", html, re.S
    )
    assert inline
    policy = response.headers["Content-Security-Policy"]
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_the_sign_in_page_and_anonymous_redirects_have_the_headers(client):
    assert_hardened(client.get("/login"), "/login")
    assert_hardened(client.get("/explore"), "redirect")


def test_every_api_response_has_the_headers(app, client, auth):
    token = auth.api_token("ana@example.com", Role.VIEWER)
    bearer = {"Authorization": f"Bearer {token}"}
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")]
    assert len(rules) >= 5
    for rule in rules:
        path = re.sub(r"<(?:[^:>]+:)?[^>]+>", "1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, headers=bearer)
            policy = assert_hardened(response, f"{method} {path}")
            if response.mimetype == "application/json":
                assert policy.startswith("default-src 'none'"), path
    for response in (
        client.get("/api/v1/datasets"),  # 401
        client.get("/api/v1/no-such-route", headers=bearer),  # 404
        client.get("/healthz"),
    ):
        assert_hardened(response, response.request.path)


def test_a_rate_limited_api_response_has_the_headers(make_app, auth):
    app = make_app(INSIGHTWAVE_RATE_LIMITING="true", INSIGHTWAVE_RATE_LIMIT="2 per minute")
    client = app.test_client()
    token = AuthActions(app, client).api_token("ana@example.com", Role.VIEWER)
    answers = [
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}) for _ in range(3)
    ]
    assert answers[-1].status_code == 429
    assert_hardened(answers[-1], "429")


def test_hsts_only_over_https(app):
    client = app.test_client()
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in client.get("/login").headers
    # Without trusted proxies a client cannot claim HTTPS for itself.
    claimed = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in claimed.headers
    # A JSON answer's headers are worked out once: HSTS still follows each request's scheme.
    for base_url, hsts in [("https://localhost", True), ("http://localhost", False)] * 2:
        answer = client.get("/healthz", base_url=base_url)
        assert ("Strict-Transport-Security" in answer.headers) is hsts, base_url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", base_url
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_behind_a_configured_proxy_the_client_address_and_scheme_are_the_proxys_word(
    make_app,
):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    for proxies, expected_ip, hsts in ((0, "127.0.0.1", False), (1, "203.0.113.7", True)):
        app = make_app(INSIGHTWAVE_PROXY_COUNT=str(proxies))
        client = app.test_client()
        auth = AuthActions(app, client)
        email = f"proxy{proxies}@example.com"
        auth.create(email, Role.VIEWER)
        page = auth._client.get("/login", headers=forwarded)
        assert ("Strict-Transport-Security" in page.headers) is hsts
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
        assert csrf
        response = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)},
            headers=forwarded | {"Referer": "https://localhost/login"},
        )
        assert response.status_code == 302, response.text
        with app.app_context():
            user = db.session.scalar(select(User).where(User.email == email))
            ips = db.session.scalars(select(UserSession.ip).where(UserSession.user_id == user.id))
            assert list(ips) == [expected_ip]
            db.session.remove()


def test_the_hub_named_by_its_url_is_the_only_other_connect_source(make_app, auth):
    app = make_app(INSIGHTWAVE_HUB_URL="wss://live.example.com/live")
    client = app.test_client()
    AuthActions(app, client).login_as(Role.VIEWER)
    policy = client.get("/").headers["Content-Security-Policy"]
    assert re.search(r"connect-src 'self' wss://live\.example\.com(;|$)", policy)


def test_serve_passes_forwarded_headers_to_the_app_only_behind_declared_proxies(make_app):
    from app.server import waitress_server

    for proxies, secure in ((0, False), (1, True)):
        wsgi = waitress_server(make_app(INSIGHTWAVE_PROXY_COUNT=str(proxies)), "127.0.0.1", 0, 2)
        threading.Thread(target=wsgi.run, daemon=True).start()
        try:
            page = requests.get(
                f"http://127.0.0.1:{wsgi.effective_port}/login",
                headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"},
                timeout=10,
            )
        finally:
            wsgi.close()
        assert ("Strict-Transport-Security" in page.headers) is secure


def test_a_forged_dash_callback_without_the_csrf_token_is_refused(dash_app, client, auth):
    auth.login_as(Role.ADMIN)
    body = callback_body(dash_app, SERVER_CALLBACK)
    forged = client.post("/_dash-update-component", json=body)
    assert forged.status_code == 400
    assert forged.get_json()["error"]["code"] == "csrf_failed"
    wrong = client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": "x" * 40})
    assert wrong.status_code == 400
    genuine = client.post("/_dash-update-component", json=body, headers=csrf_header(client))
    assert genuine.status_code == 200


def test_a_cross_origin_api_request_is_refused_by_default(client, auth):
    token = auth.api_token("ana@example.com", Role.VIEWER)
    response = client.get(
        "/api/v1/me", headers={"Origin": EVIL, "Authorization": f"Bearer {token}"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/api/v1/me",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_cross_origin_api_request_from_an_allowed_origin_is_answered(make_app):
    app = make_app(INSIGHTWAVE_CORS_ORIGINS=f"{FRIEND}, https://other.example")
    client = app.test_client()
    token = AuthActions(app, client).api_token("ana@example.com", Role.VIEWER)
    preflight = client.options(
        "/api/v1/me",
        headers={
            "Origin": FRIEND,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == FRIEND
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    bearer = {"Authorization": f"Bearer {token}"}
    allowed = client.get("/api/v1/me", headers=bearer | {"Origin": FRIEND})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == FRIEND
    refused = client.get("/api/v1/me", headers=bearer | {"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in refused.headers
    # Pages are never shared cross-origin, whatever the API allows.
    assert (
        "Access-Control-Allow-Origin"
        not in client.get("/login", headers={"Origin": FRIEND}).headers
    )


def test_brute_force_on_one_account_locks_it(auth):
    auth.create("ana@example.com", Role.VIEWER)
    for _ in range(5):
        assert auth.login("ana@example.com", "wrong password!").status_code == 401
    assert auth.login("ana@example.com").status_code == 401  # the right password, locked


def test_brute_force_from_one_address_is_throttled_across_accounts(make_app):
    app = make_app(
        INSIGHTWAVE_RATE_LIMITING="true", INSIGHTWAVE_LOGIN_RATE_LIMIT_IP="4 per 15 minutes"
    )
    attacker = AuthActions(app, app.test_client())
    attacker.create("ana@example.com", Role.VIEWER)
    # Four accounts, one wrong guess each: no account reaches its own lockout.
    for name in ("bob", "cy", "di", "ed"):
        assert attacker.login(f"{name}@example.com", "wrong password!").status_code == 401
    throttled = attacker.login("ana@example.com")  # even the right password
    assert throttled.status_code == 429
    assert "Too many failed sign-ins" in throttled.text
    assert int(throttled.headers["Retry-After"]) > 0
    # Another address signs in as usual; successes do not count against anyone.
    for _ in range(6):
        elsewhere = app.test_client()
        elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.10"
        assert AuthActions(app, elsewhere).login("ana@example.com").status_code == 302


def test_session_fixation_is_not_possible(app, auth, client):
    auth.create("ana@example.com", Role.VIEWER)
    client.get("/login")
    planted = client.get_cookie("insightwave_session").value  # what an attacker could plant
    assert auth.login("ana@example.com").status_code == 302
    assert client.get_cookie("insightwave_session").value != planted
    attacker = app.test_client()
    attacker.set_cookie("insightwave_session", planted)
    assert attacker.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me").status_code == 200


def set_session_times(app, **values):
    with app.app_context():
        db.session.execute(update(UserSession).values(**values))
        db.session.commit()
        db.session.remove()


def test_an_idle_session_ends(app, auth, client):
    auth.login_as(Role.VIEWER)
    assert client.get("/api/v1/me").status_code == 200
    idle = app.config["INSIGHTWAVE"].session_idle_minutes
    set_session_times(app, last_seen_at=datetime.now(UTC) - timedelta(minutes=idle - 2))
    assert client.get("/api/v1/me").status_code == 200  # and this use renews it
    set_session_times(app, last_seen_at=datetime.now(UTC) - timedelta(minutes=idle + 1))
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/explore").headers["Location"].startswith("/login")


def test_the_idle_limit_is_configurable(make_app):
    app = make_app(INSIGHTWAVE_SESSION_IDLE_MINUTES="5")
    client = app.test_client()
    AuthActions(app, client).login_as(Role.VIEWER)
    set_session_times(app, last_seen_at=datetime.now(UTC) - timedelta(minutes=4))
    assert client.get("/api/v1/me").status_code == 200
    set_session_times(app, last_seen_at=datetime.now(UTC) - timedelta(minutes=6))
    assert client.get("/api/v1/me").status_code == 401


def test_a_session_ends_at_its_absolute_limit_even_in_use(make_app):
    app = make_app(INSIGHTWAVE_SESSION_DAYS="2")
    client = app.test_client()
    AuthActions(app, client).login_as(Role.VIEWER)
    with app.app_context():
        row = db.session.scalars(select(UserSession)).one()
        assert abs(row.expires_at - row.created_at - timedelta(days=2)) < timedelta(minutes=1)
        db.session.remove()
    set_session_times(app, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert client.get("/api/v1/me").status_code == 401


@pytest.fixture
def broken_app(make_app):
    """An app whose database cannot be reached, with errors handled as in production."""
    app = make_app(DATABASE_URL="postgresql://insightwave@127.0.0.1:9/nowhere")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.fixture
def failing_app(make_app, monkeypatch):
    """An app whose sign-in and dataset list raise an unexpected error, as in production."""

    def boom(*_args, **_kwargs):
        raise RuntimeError('File "x.py": SELECT secret FROM sqlalchemy')

    monkeypatch.setattr("app.auth.authenticate", boom)
    monkeypatch.setattr("app.query_api.visible_datasets", boom)
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


LEAKS = ("Traceback", "psycopg", "OperationalError", "SELECT", "sqlalchemy", 'File "', "secret")


def sign_in_form(client, headers=None):
    page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert csrf
    return client.post(
        "/login",
        data={"email": "ana@example.com", "password": PASSWORD, "csrf_token": csrf.group(1)},
        headers=headers or {"Accept": "text/html"},
    )


def test_a_server_error_shows_no_stack_trace_or_sql_on_a_page(failing_app):
    response = sign_in_form(failing_app.test_client())
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "Something went wrong" in response.text
    assert not [leak for leak in LEAKS if leak in response.text]
    assert_hardened(response, "500 page")


def test_a_server_error_shows_no_stack_trace_or_sql_in_the_api(failing_app, auth):
    token = auth.api_token("ana@example.com", "viewer")
    response = failing_app.test_client().get(
        "/api/v1/datasets", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {
            "code": "internal",
            "message": "something went wrong on the server; it has been logged",
        }
    }
    assert_hardened(response, "500 json")


def test_an_unreachable_database_is_a_503_to_retry_without_internals(broken_app):
    page = sign_in_form(broken_app.test_client())
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "try again" in page.text and page.headers["Retry-After"] == "5"
    assert not [leak for leak in LEAKS if leak in page.text]
    api = broken_app.test_client().get(
        "/api/v1/datasets", headers={"Authorization": "Bearer iw_nothing"}
    )
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert api.get_json()["error"]["code"] == "unavailable"
    assert not [leak for leak in LEAKS if leak in api.text]
    assert_hardened(api, "503 json")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the machine's openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.slow
def test_serve_with_a_certificate_serves_https_and_stops_promptly(certificate, cli_env, tmp_path):
    from tests.test_serve import CLEAN_EXIT, free_port

    cert, key = certificate
    port = free_port()
    env = {
        **os.environ,
        **cli_env,
        "INSIGHTWAVE_HUB_PORT": "0",
        "INSIGHTWAVE_ADMIN_EMAIL": "admin@example.com",
        "INSIGHTWAVE_ADMIN_PASSWORD": PASSWORD,
    }
    command = [
        str(Path(sys.executable).parent / "insightwave"),
        "serve",
        "--port", str(port),
        "--certfile", str(cert),
        "--keyfile", str(key),
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    held: list[Any] = []
    try:
        url = f"https://127.0.0.1:{port}"

        def up() -> requests.Response | None:
            try:
                return requests.get(f"{url}/login", verify=str(cert), timeout=2)
            except requests.ConnectionError:
                assert process.poll() is None, log.seek(0) or log.read()
                return None

        page = wait_for(up, timeout=60, what="serve over HTTPS")
        assert page.status_code == 200
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "Secure" in page.headers["Set-Cookie"]
        log.seek(0)
        assert f"running at {url}/" in log.read()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/login", timeout=2)

        # What held a stop for tens of seconds: idle TLS connections, more than the 8 threads
        # (cheroot gives each to a thread that waits 10 s for a request), a kept-alive
        # session, and clients that stopped reading a large response.
        context = ssl.create_default_context(cafile=str(cert))
        session = requests.Session()
        held.append(session)
        assert session.get(f"{url}/login", verify=str(cert), timeout=10).status_code == 200
        for _ in range(2):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader = context.wrap_socket(raw, server_hostname="127.0.0.1")
            reader.sendall(f"GET {LARGE_ASSET} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert reader.recv(64).startswith(b"HTTP/1.1 200")  # and then reads no more
            held.append(reader)
        for _ in range(12):  # last: they hold every free thread for 10 s
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))

        process.terminate()
        try:
            status = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("serve --certfile took more than 10 s to stop after SIGTERM")
        log.seek(0)
        assert status in CLEAN_EXIT, log.read()
    finally:
        for connection in held:
            connection.close()
        if process.poll() is None:  # a failed test: no stray server for the next ones
            process.kill()
            process.wait(timeout=10)
        log.close()


LARGE_ASSET = "/_dash-component-suites/plotly/package_data/plotly.min.js"  # about 5 MB, public


RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
});
"""


@pytest.mark.browser
def test_every_page_runs_in_chromium_without_a_csp_violation(driver, base_url, auth, app):
    """Pages, their charts (plotly, WebGL on the live page) and grids, under the real policy."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_browser import sign_in

    token = auth.api_token("pusher@example.com", Role.ANALYST)
    rows = [{"time": f"2026-01-01T00:0{i}:00Z", "value": i, "site": "a"} for i in range(5)]
    pushed = app.test_client().post(
        "/api/v1/datasets/sensors/events",
        json=rows,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert pushed.status_code in {200, 201}, pushed.text
    # Injected through the DevTools protocol, so the policy under test cannot block it.
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS}
    )
    sign_in(driver, base_url, auth, "ada@example.com", "admin")
    visits = [*page_paths(), "/explore?dataset=sensors", "/live?dataset=sensors"]
    violations: dict[str, set[str]] = {}
    for path in visits:
        driver.get(base_url + path)
        WebDriverWait(driver, 20).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#shell-main"))
        )
        wait_for(
            lambda: driver.execute_script(
                "return !document.querySelector('._dash-loading') && document.readyState"
                " === 'complete'"
            ),
            timeout=20,
            what=f"{path} to load",
        )
        time.sleep(1.5)  # charts draw after their callbacks answer
        for violation in driver.execute_script("return window.__cspViolations"):
            violations.setdefault(violation, set()).add(path)
    assert violations == {}
