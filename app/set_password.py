"""Set-password links: a signed token that expires and works once, and the public page for it."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask_wtf import FlaskForm
from itsdangerous import BadData, URLSafeTimedSerializer
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from app.components.messages import sentence
from app.extensions import db
from app.models import User
from app.passwords import MAX_PASSWORD_LENGTH
from app.sessions import revoke_all_sessions
from app.users import UserError, change_password

bp = Blueprint("set_password", __name__)

LINK_HOURS = 24
_SALT = "insightwave.set-password"
LINK_REFUSED = "This link has expired or has already been used. Ask an admin for a new one."


class SetPasswordForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )
    confirm = PasswordField(
        "New password again", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _state(user: User) -> str:
    # Bound to the stored password: once a password is set (or another link issued, which
    # stores a new unusable value) the stored value changes and the link stops working.
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:24]


def link_token(user: User) -> str:
    """Return a signed token that lets ``user`` set a password once, within LINK_HOURS."""
    return str(_serializer().dumps({"user": user.id, "state": _state(user)}))


def link_for(user: User) -> str:
    """Return the full set-password address for ``user`` (needs a request context)."""
    return url_for("set_password.form", token=link_token(user), _external=True)


def user_for_link(token: str, max_age: int = LINK_HOURS * 3600) -> User | None:
    """Return the active user a live link belongs to, or None (bad, expired or used)."""
    try:
        data = _serializer().loads(token, max_age=max_age)
    except BadData:
        return None
    user_id = data.get("user") if isinstance(data, dict) else None
    if not isinstance(user_id, int):
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or data.get("state") != _state(user):
        return None
    return user


@bp.route("/set-password", methods=["GET", "POST"])
def form() -> Any:
    user = user_for_link(request.args.get("token", "")[:1000])
    if user is None:
        return render_template("set_password.html", form=None, error=LINK_REFUSED), 400
    form = SetPasswordForm()
    if request.method == "GET":
        return render_template("set_password.html", form=form, email=user.email, error=None)
    error = None
    if not form.validate_on_submit():
        error = (
            "Your form expired. Open the link again."
            if "csrf_token" in form.errors
            else ("Enter the new password twice.")
        )
    elif form.password.data != form.confirm.data:
        error = "The two passwords differ."
    else:
        try:
            revoke_all_sessions(user.id)
            change_password(user, form.password.data or "", user, "user.set_password")
        except UserError as exc:
            db.session.rollback()
            error = sentence(exc)
    if error is not None:
        page = render_template("set_password.html", form=form, email=user.email, error=error)
        return page, 400
    return render_template("set_password.html", form=None, done=True, error=None)
