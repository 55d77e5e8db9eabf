"""Single sign-on against a real OpenID Connect provider (oidc-provider-mock), started here."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from app.config import Config, ConfigError
from app.extensions import db
from app.models import AuditEntry, Role, User

SSO = {
    "INSIGHTWAVE_OIDC_CLIENT_ID": "insightwave",
    "INSIGHTWAVE_OIDC_CLIENT_SECRET": "not-a-real-secret",
    "INSIGHTWAVE_OIDC_ROLES": "bi-admins=admin,bi-analysts=analyst",
    "INSIGHTWAVE_OIDC_LABEL": "Acme SSO",
}


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso_app(make_app, provider, database_url):
    return make_app(INSIGHTWAVE_OIDC_ISSUER=provider, INSIGHTWAVE_OIDC_DEFAULT_ROLE="viewer", **SSO)


def claims(provider: str, sub: str, **values: object) -> None:
    response = httpx.put(f"{provider}/users/{sub}", json=values)
    assert response.status_code == 204


def sso_sign_in(client, provider: str, sub: str, target: str = "/"):
    """Go through the provider's consent form as a person would; return our callback's answer."""
    start = client.get(f"/login/sso?next={target}")
    assert start.status_code == 302
    authorize = start.headers["Location"]
    assert authorize.startswith(f"{provider}/oauth2/authorize?")
    consent = httpx.post(authorize, data={"sub": sub, "action": "authorize"})
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    assert back.path == "/login/sso/callback"
    return client.get(f"{back.path}?{back.query}")


def user(app, email: str) -> User | None:
    with app.app_context():
        found = db.session.query(User).filter_by(email=email).one_or_none()
        db.session.expunge_all()
        db.session.remove()
    return found


def actions(app) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = [(a.action, a.target) for a in db.session.query(AuditEntry).order_by(AuditEntry.id)]
        db.session.remove()
    return rows


def test_the_sign_in_page_offers_single_sign_on(sso_app):
    page = sso_app.test_client().get("/login?next=/explore")
    assert page.status_code == 200
    assert b'id="login-sso"' in page.data and b"Sign in with Acme SSO" in page.data
    assert b"/login/sso?next=/explore" in page.data


def test_a_first_sign_in_creates_the_user_with_the_mapped_role(sso_app, provider):
    claims(provider, "ana-1", email="Ana@Example.com", groups=["staff", "bi-analysts"])
    client = sso_app.test_client()
    answer = sso_sign_in(client, provider, "ana-1", "/explore")
    assert answer.status_code == 302 and answer.headers["Location"] == "/explore"
    created = user(sso_app, "ana@example.com")
    assert created is not None and created.role == Role.ANALYST.value
    assert created.password_hash is None  # no local password: only the provider signs them in
    assert client.get("/datasets").status_code == 200  # an analyst page
    assert client.get("/admin/users").status_code == 403
    assert ("user.create", "ana@example.com") in actions(sso_app)
    assert ("login.sso", "ana@example.com") in actions(sso_app)


def test_the_provider_decides_the_role_at_every_sign_in(sso_app, provider):
    claims(provider, "bo-1", email="bo@example.com", groups=["bi-analysts"])
    sso_sign_in(sso_app.test_client(), provider, "bo-1")
    claims(provider, "bo-1", email="bo@example.com", groups=["bi-analysts", "bi-admins"])
    client = sso_app.test_client()
    sso_sign_in(client, provider, "bo-1")
    assert user(sso_app, "bo@example.com").role == Role.ADMIN.value
    assert client.get("/admin/users").status_code == 200
    claims(provider, "bo-1", email="bo@example.com", groups="nothing-mapped")
    sso_sign_in(sso_app.test_client(), provider, "bo-1")
    # The last active admin is never demoted; bo is the only admin here.
    assert user(sso_app, "bo@example.com").role == Role.ADMIN.value


def test_an_unmapped_user_is_refused_without_a_default_role(make_app, provider, database_url):
    strict = make_app(INSIGHTWAVE_OIDC_ISSUER=provider, **SSO)
    claims(provider, "cy-1", email="cy@example.com", groups=["staff"])
    client = strict.test_client()
    answer = sso_sign_in(client, provider, "cy-1")
    assert answer.status_code == 403
    assert b"no role in Insight-Wave" in answer.data
    assert user(strict, "cy@example.com") is None
    assert client.get("/explore").status_code == 302  # still signed out


def test_a_deactivated_user_is_refused(sso_app, provider, auth):
    auth.create("dee@example.com", Role.VIEWER)
    with sso_app.app_context():
        db.session.query(User).filter_by(email="dee@example.com").update({"active": False})
        db.session.commit()
        db.session.remove()
    claims(provider, "dee-1", email="dee@example.com")
    answer = sso_sign_in(sso_app.test_client(), provider, "dee-1")
    assert answer.status_code == 403 and b"deactivated" in answer.data


def test_a_forged_callback_is_refused(sso_app, provider):
    client = sso_app.test_client()
    client.get("/login/sso")
    answer = client.get("/login/sso/callback?code=made-up&state=made-up")
    assert answer.status_code == 401
    assert b"did not complete" in answer.data
    assert client.get("/explore").status_code == 302
    assert ("login.failure", None) in actions(sso_app)


def test_local_accounts_still_sign_in_beside_single_sign_on(sso_app, auth):
    auth.create("local@example.com", Role.VIEWER)
    client = sso_app.test_client()
    client.get("/login")
    from tests.conftest import PASSWORD

    form = client.get("/login").get_data(as_text=True)
    token = form.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    answer = client.post(
        "/login", data={"email": "local@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 302
    assert client.get("/explore").status_code == 200


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"INSIGHTWAVE_OIDC_ISSUER": "ftp://idp"}, "INSIGHTWAVE_OIDC_ISSUER"),
        ({"INSIGHTWAVE_OIDC_ISSUER": "https://idp"}, "INSIGHTWAVE_OIDC_CLIENT_ID"),
        (
            {**SSO, "INSIGHTWAVE_OIDC_ISSUER": "https://idp", "INSIGHTWAVE_OIDC_ROLES": "x=root"},
            "INSIGHTWAVE_OIDC_ROLES",
        ),
        (
            {
                **SSO,
                "INSIGHTWAVE_OIDC_ISSUER": "https://idp",
                "INSIGHTWAVE_OIDC_DEFAULT_ROLE": "boss",
            },
            "INSIGHTWAVE_OIDC_DEFAULT_ROLE",
        ),
    ],
)
def test_single_sign_on_settings_are_checked(tmp_path, env, variable):
    with pytest.raises(ConfigError) as error:
        Config.from_env({"INSIGHTWAVE_DATA_DIR": str(tmp_path), **env})
    assert error.value.variable == variable
