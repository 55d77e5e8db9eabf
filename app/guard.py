"""The one access guard: pages, Dash callbacks, API routes and hub messages, checked on the server.

Rules come from where things are declared: a page's role from its ``register_page(...,
required_role=...)``; a callback takes the role of the page module that defines it; an API
view carries the role given by ``@requires``; a hub message type the role in
``HUB_MESSAGE_ROLES``. Anything without a rule is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import dash
from flask import Flask, Response, abort, current_app, g, redirect, request
from flask_login import current_user

from app.extensions import csrf
from app.models import Role
from app.security import API_PREFIX, error_json

F = TypeVar("F", bound=Callable[..., Any])

CALLBACK_ENDPOINT = "/_dash-update-component"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
DASH_PAGE_ENDPOINTS = {"/", "/<path:path>"}
# Reachable without signing in: the login form, health checks, the API's OpenAPI document and
# its reference page, and static files the login page and Dash's JavaScript bundle need (they
# carry no data).
PUBLIC_ENDPOINTS = {
    "auth.login",
    "oidc.start",
    "oidc.finish",
    "auth.logout",
    "set_password.form",  # a signed, expiring, single-use link is its own credential
    "health.healthz",
    "health.readyz",
    "metrics.metrics",  # the view decides: loopback, the metrics token, or an admin
    "api.openapi",  # the API's description, as public as the API's existence
    "api.docs",
    "static",
    "/_favicon.ico",
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
}
PUBLIC_ENDPOINT_PREFIXES = ("_dash_assets",)
# Modules outside pages/ whose callbacks have a rule of their own: Dash's own page router
# (its output is the page layout, which is guarded itself) and the shell (theme, navigation)
# for anyone signed in; saving a chart to a dashboard, offered on a viewer page, for analysts;
# the datasets page's list (its retention and delete buttons), for analysts like its page.
SHELL_CALLBACK_MODULES = {
    "dash.dash": Role.VIEWER,
    "app.components.shell": Role.VIEWER,
    "app.components.dashboard_save": Role.ANALYST,
    "app.components.live_chart": Role.VIEWER,
    "app.components.live_save": Role.ANALYST,
    "app.components.dataset_list": Role.ANALYST,
}
# Messages a live hub client may send, and the role each needs (the dataset is checked too).
HUB_MESSAGE_ROLES = {"subscribe": Role.VIEWER, "unsubscribe": Role.VIEWER}


def current_role() -> Role | None:
    """Return the signed-in user's role, or None for an anonymous visitor."""
    if not current_user.is_authenticated:
        return None
    return Role(current_user.role)


def can_access(required: Role) -> bool:
    """Tell whether the current user holds ``required`` (or a role above it)."""
    role = current_role()
    return role is not None and role.includes(required)


def requires(role: Role) -> Callable[[F], F]:
    """Declare the role an API or Flask view needs; the guard enforces it before the view runs."""

    def mark(view: F) -> F:
        view.required_role = role  # type: ignore[attr-defined]
        return view

    return mark


def hub_message_role(message_type: str) -> Role | None:
    """Return the role a hub client message needs, or None: no rule, refused."""
    return HUB_MESSAGE_ROLES.get(message_type)


def page_role(page: dict[str, Any]) -> Role:
    """Return the role a registered Dash page requires (viewer unless it says otherwise)."""
    return Role(page.get("required_role", Role.VIEWER.value))


def page_for_path(pathname: str) -> dict[str, Any] | None:
    """Return the registered page served at ``pathname``, or None."""
    wanted = "/" + pathname.strip("/")
    for page in dash.page_registry.values():
        if page["path"] == wanted and not page["module"].endswith("not_found_404"):
            return dict(page)
    return None


def callback_role(dash_app: dash.Dash, output: str) -> Role | None:
    """Return the role a callback (named by its output spec) requires, or None if it has no rule."""
    entry = dash_app.callback_map.get(output)
    function = entry.get("callback") if entry is not None else None
    if function is None:
        return None  # unknown, or clientside: the server has nothing to run
    module = getattr(function, "__module__", "")
    if module in SHELL_CALLBACK_MODULES:
        return SHELL_CALLBACK_MODULES[module]
    page = dash.page_registry.get(module)
    return page_role(page) if page is not None else None


def install(server: Flask, dash_app: dash.Dash) -> None:
    """Wrap every page layout and check every request of ``server``."""
    from app.components.errors import forbidden_layout

    for page in dash.page_registry.values():
        page["layout"] = _guarded_layout(page["layout"], page_role(page), forbidden_layout)

    @server.before_request
    def check_request() -> Any:
        return _check(dash_app)

    @server.after_request
    def page_status(response: Response) -> Response:
        status = g.pop("page_status", None)
        if status is not None and response.status_code == 200:
            response.status_code = status
        return response


def _guarded_layout(layout: Any, role: Role, forbidden: Callable[[], Any]) -> Callable[..., Any]:
    def guarded(**kwargs: Any) -> Any:
        if not can_access(role):
            return forbidden()
        return layout(**kwargs) if callable(layout) else layout

    return guarded


def _check(dash_app: dash.Dash) -> Any:
    endpoint = request.endpoint or ""
    if request.path.startswith(API_PREFIX):
        if request.routing_exception is not None:
            return None  # Flask answers it, as JSON under the API (app.security): 404 or 405
        if endpoint in DASH_PAGE_ENDPOINTS:  # the pages' catch-all took a path the API lacks
            abort(404)
    if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_ENDPOINT_PREFIXES):
        return None
    if not current_user.is_authenticated:
        return _refuse_anonymous(endpoint)
    if endpoint == CALLBACK_ENDPOINT:
        return _check_callback(dash_app)
    if endpoint in DASH_PAGE_ENDPOINTS:
        page = page_for_path(request.path)
        if page is None:
            g.page_status = 404
        elif not can_access(page_role(page)):
            g.page_status = 403
        return None
    if endpoint.startswith("/_dash-") or endpoint == "/_reload-hash":
        return None  # layout and dependency lists: the same for every signed-in user
    view = current_app.view_functions.get(endpoint)
    required = getattr(view, "required_role", None)
    if required is None:
        return error_json(403, "forbidden", "this route has no access rule")
    if not can_access(required):
        return error_json(403, "forbidden", f"requires the {required.value} role")
    if request.method not in SAFE_METHODS and not g.get("bearer_auth"):
        csrf.protect()  # a session-cookie call that changes something needs the CSRF token
    return None


def _check_callback(dash_app: dash.Dash) -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_json(400, "bad_request", "a callback request is a JSON object")
    output = body.get("output")
    if not isinstance(output, str):
        return error_json(400, "bad_request", "a callback request names its output")
    required = callback_role(dash_app, output)
    if required is None:
        return error_json(403, "forbidden", "this callback has no access rule")
    if not can_access(required):
        return error_json(403, "forbidden", f"requires the {required.value} role")
    problem = _shape_problem(body, dash_app.callback_map[output])
    if problem is not None:
        return error_json(400, "bad_request", problem)
    return None


def _shape_problem(body: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """Say what is wrong with a callback request's inputs and state, so Dash never sees it."""
    for key in ("inputs", "state"):
        given, wanted = body.get(key, []), entry.get(key, [])
        if not isinstance(given, list) or len(given) != len(wanted):
            return f"this callback takes {len(wanted)} {key}"
        if not all(isinstance(item, dict | list) for item in given):
            return f"each of the {key} is an object, or a list of them for a pattern"
    return None


def _refuse_anonymous(endpoint: str) -> Any:
    if endpoint in DASH_PAGE_ENDPOINTS and request.method == "GET":
        target = request.full_path.rstrip("?")
        return redirect("/login?" + urlencode({"next": target}))
    return error_json(401, "unauthorized", "sign in first")
