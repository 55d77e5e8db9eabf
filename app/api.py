"""The REST API, ``/api/v1``; every view declares its role with ``@requires``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user

from app.guard import requires
from app.models import Role

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/me")
@requires(Role.VIEWER)
def me() -> Any:
    """Describe the signed-in user."""
    return jsonify(email=current_user.email, role=current_user.role)
