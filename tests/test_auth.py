"""Signing in and out through the real form, lockout, session rotation and cookies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from app.auth import LOGIN_REFUSED
from app.extensions import db
from app.models import AuditEntry, User
from tests.conftest import PASSWORD

REFUSED_HTML = LOGIN_REFUSED.replace("'", "&#39;")


def test_login_form_renders_with_csrf_field_and_no_javascript(client):
    page = client.get("/login")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="csrf_token"' in body
    assert "<script" not in body


def test_login_success_redirects_to_next_page(client, auth):
    auth.create("ana@example.com", "analyst")
    response = auth.login("ana@example.com", next_url="/explore")
    assert response.status_code == 302
    assert response.headers["Location"] == "/explore"
    assert client.get("/api/v1/me").get_json() == {"email": "ana@example.com", "role": "analyst"}


def test_login_ignores_next_pointing_off_site(auth):
    auth.create("ana@example.com", "analyst")
    response = auth.login("ana@example.com", next_url="//evil.example/steal")
    assert response.headers["Location"] == "/"


def test_login_email_is_case_insensitive(auth):
    auth.create("ana@example.com", "analyst")
    assert auth.login("  Ana@Example.COM ").status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_answer(auth):
    auth.create("ana@example.com", "analyst")
    wrong = auth.login("ana@example.com", "not the password")
    unknown = auth.login("nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert REFUSED_HTML in wrong.get_data(as_text=True)
    assert REFUSED_HTML in unknown.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, auth):
    auth.create("ana@example.com", "analyst")
    response = client.post("/login", data={"email": "ana@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/api/v1/me").status_code == 401


def test_login_with_empty_fields_says_what_is_missing(auth, client):
    response = client.post(
        "/login", data={"email": "", "password": "", "csrf_token": auth.csrf_token()}
    )
    assert response.status_code == 400
    assert "Enter your email and password." in response.get_data(as_text=True)


def test_account_locks_after_five_failures_even_for_the_right_password(app, auth):
    auth.create("ana@example.com", "analyst")
    for _ in range(5):
        assert auth.login("ana@example.com", "wrong password!").status_code == 401
    locked = auth.login("ana@example.com")
    assert locked.status_code == 401
    assert REFUSED_HTML in locked.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "ana@example.com"))
        assert user.locked_until > datetime.now(UTC) + timedelta(minutes=14)
        actions = db.session.scalars(select(AuditEntry.action)).all()
        assert actions.count("login.lockout") == 1
        db.session.remove()


def test_lockout_ends_after_its_time(app, auth):
    auth.create("ana@example.com", "analyst")
    for _ in range(5):
        auth.login("ana@example.com", "wrong password!")
    with app.app_context():
        db.session.execute(
            update(User).values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
    assert auth.login("ana@example.com").status_code == 302


def test_lockout_threshold_is_configurable(make_app):
    from tests.conftest import AuthActions

    app = make_app(INSIGHTWAVE_LOGIN_MAX_FAILURES="2")
    auth = AuthActions(app, app.test_client())
    auth.create("ana@example.com", "analyst")
    auth.login("ana@example.com", "wrong password!")
    auth.login("ana@example.com", "wrong password!")
    assert auth.login("ana@example.com").status_code == 401


def test_successful_login_resets_the_failure_count(app, auth):
    auth.create("ana@example.com", "analyst")
    for _ in range(4):
        auth.login("ana@example.com", "wrong password!")
    assert auth.login("ana@example.com").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(User.failed_logins)) == 0
        db.session.remove()


def test_deactivated_user_cannot_sign_in(app, auth):
    from app.users import set_active

    auth.create("ana@example.com", "analyst")
    with app.app_context():
        set_active("ana@example.com", active=False)
        db.session.remove()
    assert auth.login("ana@example.com").status_code == 401


def test_logout_ends_the_session_even_for_a_replayed_cookie(client, auth):
    auth.login_as("viewer")
    stolen = client.get_cookie("insightwave_session").value
    assert auth.logout().status_code == 302
    assert client.get("/api/v1/me").status_code == 401
    client.set_cookie("insightwave_session", stolen)
    assert client.get("/api/v1/me").status_code == 401


def test_session_id_is_rotated_at_login(client, auth):
    auth.create("ana@example.com", "analyst")
    client.get("/login")
    planted = client.get_cookie("insightwave_session").value
    auth.login("ana@example.com")
    after = client.get_cookie("insightwave_session").value
    assert after != planted
    # Two sign-ins of the same user get two different sessions.
    auth.logout()
    auth.login("ana@example.com")
    assert client.get_cookie("insightwave_session").value not in {planted, after}


def test_session_cookie_is_httponly_and_samesite_lax(client, auth):
    auth.create("ana@example.com", "analyst")
    response = auth.login("ana@example.com")
    cookie = next(
        header
        for header in response.headers.getlist("Set-Cookie")
        if "insightwave_session" in header
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(app):
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost")
    cookie = next(h for h in page.headers.getlist("Set-Cookie") if "insightwave_session" in h)
    assert "Secure" in cookie


def test_logins_and_failures_are_audited(app, auth):
    auth.create("ana@example.com", "analyst")
    auth.login("ana@example.com", "wrong password!")
    auth.login("ana@example.com")
    with app.app_context():
        actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        db.session.remove()
    assert actions == ["user.create", "login.failure", "login.success"]
