"""Sign in and out: a server-rendered form that works without JavaScript."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Request, current_app, g, redirect, render_template, request, session
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length

from app import audit
from app.extensions import db, login_manager
from app.models import User
from app.sessions import load_session, open_session, revoke_session
from app.tokens import user_for_token
from app.users import authenticate

bp = Blueprint("auth", __name__)

# One message for every refusal, so the form never tells whether an email exists.
LOGIN_REFUSED = "Wrong email or password, or the account is locked. Try again later."


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


@login_manager.user_loader  # type: ignore[untyped-decorator]
def load_user(session_token: str) -> User | None:
    return load_session(session_token)


@login_manager.request_loader  # type: ignore[untyped-decorator]
def load_user_from_bearer(req: Request) -> User | None:
    """Sign in an API client by its ``Authorization: Bearer <token>`` header."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    g.bearer_auth = True
    return user_for_token(token.strip())


def safe_next(target: str | None) -> str:
    """Return ``target`` if it is a path on this site, else the home page."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(safe_next(request.args.get("next")))
        form.next.data = request.args.get("next", "")
        return render_template("login.html", form=form, error=None)
    if not form.validate_on_submit():
        message = (
            "Your form expired. Please sign in again."
            if "csrf_token" in form.errors
            else ("Enter your email and password.")
        )
        return render_template("login.html", form=form, error=message), 400
    config = current_app.config["INSIGHTWAVE"]
    user = authenticate(
        form.email.data or "",
        form.password.data or "",
        max_failures=config.login_max_failures,
        lockout=timedelta(minutes=config.lockout_minutes),
    )
    if user is None:
        return render_template("login.html", form=form, error=LOGIN_REFUSED), 401
    sign_in(user)
    return redirect(safe_next(form.next.data))


def sign_in(user: User) -> None:
    """Start a new server-side session for ``user`` (a password or single sign-on checked)."""
    config = current_app.config["INSIGHTWAVE"]
    # A fresh session id at sign-in: nothing set before it (a planted cookie) carries over.
    session.clear()
    open_session(user, timedelta(days=config.session_days))
    db.session.commit()
    login_user(user)
    session.permanent = True


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    form = FlaskForm()
    if request.method == "GET":
        if not current_user.is_authenticated:
            return redirect("/login")
        return render_template("logout.html", form=form)
    if not form.validate_on_submit():
        return render_template("logout.html", form=form), 400
    if current_user.is_authenticated:
        revoke_session(current_user.session_id)
        audit.record("logout", current_user._get_current_object(), current_user.email)
        db.session.commit()
    logout_user()
    session.clear()
    return redirect("/login")
