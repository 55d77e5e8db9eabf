"""Optional single sign-on with OpenID Connect (Authlib), beside local accounts.

When ``INSIGHTWAVE_OIDC_ISSUER`` is set, the sign-in page offers a button that sends the user
to the provider (authorization code flow, with state and nonce checked by Authlib). Back here,
the provider's ``email`` claim names the local user (created on first sign-in, without a local
password) and the role claim decides the role at every sign-in: the provider is the source of
truth for the users it signs in. A user the mapping gives no role is refused; so is a
deactivated one. The last active admin is never demoted this way.
"""

from __future__ import annotations

import contextlib
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from requests import RequestException

from app import audit
from app.config import OidcSettings
from app.extensions import db
from app.models import Role, User
from app.users import UserError, find_user, normalize_email, set_role

bp = Blueprint("oidc", __name__)
oauth = OAuth()
NEXT_KEY = "oidc_next"


def init_oidc(server: Flask, settings: OidcSettings | None) -> None:
    """Offer single sign-on on ``server`` if it is configured."""
    if settings is None:
        return
    oauth.init_app(server)
    oauth.register(
        "oidc",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile"},
    )
    server.register_blueprint(bp)
    server.context_processor(lambda: {"sso_label": settings.label})


def mapped_role(claims: dict[str, Any], settings: OidcSettings) -> Role | None:
    """The highest role any value of the role claim maps to, else the default role (or None)."""
    raw = claims.get(settings.role_claim)
    values = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    roles = [Role(role) for value, role in settings.roles if value in values]
    if roles:
        return max(roles, key=lambda role: list(Role).index(role))
    return Role(settings.default_role) if settings.default_role else None


@bp.get("/login/sso")
def start() -> Any:
    from app.auth import safe_next

    session[NEXT_KEY] = safe_next(request.args.get("next"))
    return oauth.oidc.authorize_redirect(url_for("oidc.finish", _external=True))


@bp.get("/login/sso/callback")
def finish() -> Any:
    from app.auth import LoginForm, sign_in

    settings: OidcSettings = current_app.config["INSIGHTWAVE"].oidc
    try:
        token = oauth.oidc.authorize_access_token()
        claims = dict(token.get("userinfo") or oauth.oidc.userinfo(token=token))
    except (AuthlibBaseError, RequestException, ValueError, KeyError) as exc:
        current_app.logger.warning("single sign-on failed: %s", exc)
        return refuse(LoginForm(), "Single sign-on did not complete. Try again.", 401, None)
    try:
        email = normalize_email(str(claims.get("email") or ""))
    except UserError:
        return refuse(LoginForm(), "The identity provider gave no usable email.", 403, None)
    role = mapped_role(claims, settings)
    user = find_user(email)
    if role is None:
        return refuse(LoginForm(), "Your account has no role in Insight-Wave.", 403, email)
    if user is not None and not user.active:
        return refuse(LoginForm(), "This account is deactivated.", 403, email)
    user = user_for_sign_in(email, role, user)
    audit.record("login.sso", user, email, ip=request.remote_addr, role=user.role)
    target = session.pop(NEXT_KEY, "/")
    sign_in(user)  # a new session: nothing from before sign-in carries over
    return redirect(target)


def user_for_sign_in(email: str, role: Role, user: User | None) -> User:
    """Create the user on first sign-in, or bring their role in line with the provider's."""
    if user is None:
        user = User(email=email, role=role.value, password_hash=None)
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", None, email, role=role.value, source="sso")
        return user
    if user.role != role.value:
        with contextlib.suppress(UserError):  # the last active admin stays an admin
            set_role(email, role)
    return user


def refuse(form: Any, message: str, status: int, email: str | None) -> Any:
    audit.record("login.failure", None, email, ip=request.remote_addr, source="sso")
    db.session.commit()
    return render_template("login.html", form=form, error=message), status
