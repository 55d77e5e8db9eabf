"""The role matrix: every page and every callback, enumerated from the running app.

The tables below say who may open what. A page or callback that the app registers but
the tables do not mention fails ``test_every_page_has_a_rule`` or
``test_every_callback_has_a_rule``, so nothing new can escape the guard unnoticed.
"""

from __future__ import annotations

import json

import dash
import pytest

from app.models import Role
from tests.test_hub import make_hub, open_live, receive  # noqa: F401 (make_hub: a fixture)

ANONYMOUS = None
ROLES = [ANONYMOUS, Role.VIEWER, Role.ANALYST, Role.ADMIN]

# path -> the lowest role that may open it
PAGE_RULES = {
    "/": Role.VIEWER,
    "/tokens": Role.VIEWER,
    "/account": Role.VIEWER,
    "/explore": Role.VIEWER,
    "/dashboards": Role.VIEWER,
    "/live": Role.VIEWER,
    "/datasets": Role.ANALYST,
    "/jobs": Role.ANALYST,
    "/admin/users": Role.ADMIN,
    "/admin/groups": Role.ADMIN,
    "/admin/audit": Role.ADMIN,
    "/404": Role.VIEWER,
}
CLIENTSIDE = "clientside"  # runs in the browser; the server refuses it for everyone
ROUTER = ".._pages_content.children..._pages_store.data.."
# callback output -> the lowest role that may call it
CALLBACK_RULES = {
    ROUTER: Role.VIEWER,
    "_pages_dummy.children": CLIENTSIDE,
    "shell-provider.forceColorScheme": CLIENTSIDE,
    "shell.navbar": CLIENTSIDE,
    "shell-burger.opened": CLIENTSIDE,
    "..admin-groups-grid.rowData...admin-groups-datasets-grid.rowData...admin-groups-members.data"
    "...admin-groups-grant-users.data...admin-groups-grant-groups.data..": Role.ADMIN,
    "admin-groups-members.value": Role.ADMIN,
    "..admin-groups-visibility.value...admin-groups-grant-groups.value"
    "...admin-groups-grant-users.value..": Role.ADMIN,
    "..admin-groups-confirm.displayed...admin-groups-confirm.message...admin-groups-pending.data"
    "...admin-groups-message.children...admin-groups-changed.data..": Role.ADMIN,
    "..account-password-message.children...account-sessions-grid.rowData"
    "@6ebb71219d1445ab0a0fcc2918510bfb40b5883773014152c1fa0218c819e2c3..": Role.VIEWER,
    "..account-revoke-confirm.displayed...account-revoke-confirm.message"
    "...account-sessions-grid.rowData...account-sessions-message.children"
    "...account-location.href..": Role.VIEWER,
    "admin-users-grid.rowData": Role.ADMIN,
    "admin-users-filters.data": Role.ADMIN,
    "..admin-users-secret.children...admin-users-email.error...admin-users-changed.data..": (
        Role.ADMIN
    ),
    "..admin-users-confirm.displayed...admin-users-confirm.message...admin-users-pending.data"
    "...admin-users-message.children...admin-users-changed.data"
    "@a007eb16626a3829e131667b802876e051e809dd50cce42aeb0ffb5a4bbcb7c7"
    "...admin-users-secret.children"
    "@a007eb16626a3829e131667b802876e051e809dd50cce42aeb0ffb5a4bbcb7c7..": Role.ADMIN,
    "..admin-audit-grid.rowData...admin-audit-count.children...admin-audit-page.total"
    "...admin-audit-page.value...admin-audit-message.children..": Role.ADMIN,
    "admin-audit-download.data": Role.ADMIN,
    "datasets-retention-days.value": Role.ANALYST,
    "..datasets-list-grid.rowData...datasets-existing.data...datasets-manage-message.children"
    "...datasets-delete-confirm.displayed...datasets-delete-confirm.message..": Role.ANALYST,
    "datasets-upload-check.children": Role.ANALYST,
    "..datasets-upload-store.data...datasets-upload-message.children"
    "...datasets-preview-section.style...datasets-preview.children"
    "...datasets-columns-grid.rowData...datasets-name.value"
    "...datasets-key-columns.data...datasets-key-columns.value"
    "...datasets-decimal-mark.value..": Role.ANALYST,
    "..datasets-name.disabled...datasets-existing.disabled"
    "...datasets-time-column.disabled...datasets-key-columns.disabled..": Role.ANALYST,
    "..datasets-time-column.data...datasets-time-column.value..": Role.ANALYST,
    "..datasets-result.children...datasets-run-store.data..": Role.ANALYST,
    "..datasets-rejected-download.data...datasets-download-message.children..": Role.ANALYST,
    "datasets-runs-grid.rowData": Role.ANALYST,
    "..jobs-path.style...jobs-folder.style...jobs-url.style...jobs-rows.style"
    "...jobs-interval.style...jobs-cron.style..": Role.ANALYST,
    "..jobs-create-message.children...jobs-created-store.data..": Role.ANALYST,
    "..jobs-action-message.children...jobs-action-store.data"
    "...jobs-delete-confirm.displayed...jobs-delete-confirm.message..": Role.ANALYST,
    "jobs-grid.rowData": Role.ANALYST,
    "jobs-runs-grid.rowData": Role.ANALYST,
    "..jobs-runs-message.children...jobs-retry-store.data..": Role.ANALYST,
    "..jobs-edit-modal.opened...jobs-edit-job.data...jobs-edit-name.value...jobs-edit-path.value"
    "...jobs-edit-folder.value...jobs-edit-url.value...jobs-edit-rows.value"
    "...jobs-edit-schedule-kind.value...jobs-edit-interval.value...jobs-edit-cron.value"
    "...jobs-edit-path.style...jobs-edit-folder.style...jobs-edit-url.style"
    "...jobs-edit-rows.style...jobs-edit-error.children...jobs-edit-message.children"
    "...jobs-edited-store.data..": Role.ANALYST,
    "..jobs-edit-interval.style...jobs-edit-cron.style..": Role.ANALYST,
    "..live-fields.data...live-fields.value..": Role.VIEWER,
    "..live-view.children...live-note.children..": Role.VIEWER,
    "live-save-message.children": Role.ANALYST,
    '..{"key":["MATCH"],"type":"live-chart-graph"}.figure'
    '...{"key":["MATCH"],"type":"live-chart-state"}.data'
    '...{"key":["MATCH"],"type":"live-chart-note"}.children..': Role.VIEWER,
    '..{"key":["MATCH"],"type":"live-chart-ws"}.send'
    '...{"key":["MATCH"],"type":"live-chart-status"}.children'
    '...{"key":["MATCH"],"type":"live-chart-status"}.color..': CLIENTSIDE,
    '..{"key":["MATCH"],"type":"live-chart-graph"}.extendData'
    '...{"key":["MATCH"],"type":"live-chart-resync"}.data'
    '...{"key":["MATCH"],"type":"live-chart-updated"}.children..': CLIENTSIDE,
    '..{"key":["MATCH"],"type":"live-chart-paused"}.data'
    '...{"key":["MATCH"],"type":"live-chart-pause"}.children..': CLIENTSIDE,
    "..tokens-created.children...tokens-grid.rowData"
    "@0c415e6a0afc6b41dff20116fe4f73e89890f9da2860a6351a61cdd79370ab2d"
    "...tokens-name.error..": Role.VIEWER,
    "..tokens-revoke-confirm.displayed...tokens-revoke-confirm.message...tokens-message.children"
    "@d103454a82243d4ac98a4a7ea02f718df22c2a8ea2294a088e42b4a2ebf764ab..": Role.VIEWER,
    "..tokens-grid.rowData...tokens-message.children..": Role.VIEWER,
    "..explore-field.data...explore-field.value...explore-group.data...explore-group.value"
    "...explore-filter-field.data..": Role.VIEWER,
    "..explore-range.value...explore-start.value...explore-end.value...explore-start.display"
    "...explore-end.display...explore-bucket.value...explore-filters.value"
    "...explore-filter-value.value..": Role.VIEWER,
    "..explore-graph.figure...explore-graph.style...explore-table.rowData...explore-table.style"
    "...explore-link.href...explore-note.children...explore-drawn.data..": Role.VIEWER,
    "explore-download.data": Role.VIEWER,
    "explore-save-message.children": Role.ANALYST,
    '..{"index":["ALL"],"type":"dashboard-chart"}.figure'
    '...{"index":["ALL"],"type":"dashboard-explore"}.href..': Role.VIEWER,
    "dashboard-delete-confirm.displayed": Role.VIEWER,
    "..dashboard-location.href...dashboard-message.children..": Role.VIEWER,
    "..dashboard-reload.href...dashboard-message.children"
    "@5e524b606984fbfe62c2e4731098e9dbd71ae7b868cf85c966459650b3930a32..": Role.VIEWER,
    "..dashboard-tick.interval...dashboard-tick.disabled..": Role.VIEWER,
}


def allowed(role, required):
    return role is not None and required != CLIENTSIDE and role.includes(required)


def sign_in(auth, role):
    if role is not None:
        auth.login_as(role)


def csrf_header(client):
    client.get("/")
    cookie = client.get_cookie("_csrf_token")
    return {"X-CSRFToken": cookie.value} if cookie else {}


def page_text(client, pathname: str, search: str) -> str:
    """The page's layout as dash-renderer asks for it, as JSON text."""
    response = client.post(
        "/_dash-update-component",
        json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": pathname},
                {"id": "_pages_location", "property": "search", "value": search},
            ],
            "changedPropIds": ["_pages_location.pathname"],
            "state": [],
        },
        headers=csrf_header(client),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def callback_body(dash_app, output, pathname="/"):
    """A request body for the callback, with every input set the way a browser would."""
    spec = dash_app.callback_map[output]
    values = {"pathname": pathname, "search": ""}
    inputs = [
        {"id": item["id"], "property": item["property"], "value": values.get(item["property"], 1)}
        for item in spec["inputs"]
    ]
    state = [
        {"id": item["id"], "property": item["property"], "value": None}
        for item in spec.get("state", [])
    ]
    if output.startswith("{"):  # a pattern-matching output (ALL): no such component yet
        outputs: list = []
        return {
            "output": output,
            "outputs": outputs,
            "inputs": inputs,
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
            "state": state,
        }
    outputs = [
        {"id": component_id(part.split(".")[0]), "property": part.split(".")[1]}
        for part in output.strip(".").split("...")
    ]
    return {
        "output": output,
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
        "state": state,
    }


def component_id(raw):
    """The id of one output; a pattern's MATCH stands for one component (key "x")."""
    if not raw.startswith("{"):
        return raw
    return {key: "x" if value == ["MATCH"] else value for key, value in json.loads(raw).items()}


def test_every_page_has_a_rule(dash_app):
    registered = {page["path"] for page in dash.page_registry.values()}
    assert registered == set(PAGE_RULES)


def test_every_callback_has_a_rule(dash_app):
    assert set(dash_app.callback_map) == set(CALLBACK_RULES)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
@pytest.mark.parametrize("path", sorted(set(PAGE_RULES) - {"/404"}))
def test_page_matrix(dash_app, client, auth, role, path):
    sign_in(auth, role)
    response = client.get(path)
    if role is None:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")
    elif allowed(role, PAGE_RULES[path]):
        assert response.status_code == 200
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
@pytest.mark.parametrize("path", sorted(set(PAGE_RULES) - {"/404"}))
def test_page_content_matrix(dash_app, client, auth, role, path):
    """The page router serves a page's layout only to roles allowed to see it."""
    sign_in(auth, role)
    response = client.post(
        "/_dash-update-component",
        json=callback_body(dash_app, ROUTER, pathname=path),
        headers=csrf_header(client),
    )
    if role is None:
        assert response.status_code in {400, 401}
        return
    assert response.status_code == 200
    content = json.dumps(response.get_json()["response"]["_pages_content"]["children"])
    assert ('"error-403"' not in content) == allowed(role, PAGE_RULES[path])


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
@pytest.mark.parametrize("output", sorted(CALLBACK_RULES))
def test_callback_matrix(dash_app, client, auth, role, output):
    sign_in(auth, role)
    response = client.post(
        "/_dash-update-component",
        json=callback_body(dash_app, output),
        headers=csrf_header(client),
    )
    if role is None:
        assert response.status_code in {400, 401}
    elif allowed(role, CALLBACK_RULES[output]):
        assert response.status_code in {200, 204}
    else:
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"


def test_callback_without_csrf_token_is_refused(dash_app, client, auth):
    auth.login_as(Role.ADMIN)
    response = client.post(
        "/_dash-update-component", json=callback_body(dash_app, "admin-users-grid.rowData")
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"


@pytest.mark.parametrize(
    "change",
    [
        {"inputs": []},
        {"inputs": "x"},
        {"inputs": [1]},
        {"state": [{"id": "x", "property": "y"}] * 9},
        {"state": None},
    ],
)
def test_a_malformed_callback_request_gets_400(dash_app, client, auth, change):
    auth.login_as(Role.ADMIN)
    body = {**callback_body(dash_app, "admin-users-grid.rowData"), **change}
    response = client.post("/_dash-update-component", json=body, headers=csrf_header(client))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "bad_request"


def test_unknown_callback_is_refused(dash_app, client, auth):
    auth.login_as(Role.ADMIN)
    body = callback_body(dash_app, "admin-users-grid.rowData") | {"output": "nope.children"}
    response = client.post("/_dash-update-component", json=body, headers=csrf_header(client))
    assert response.status_code == 403


def test_admin_callback_returns_the_users(dash_app, client, auth):
    auth.login_as(Role.ADMIN)
    response = client.post(
        "/_dash-update-component",
        json=callback_body(dash_app, "admin-users-grid.rowData"),
        headers=csrf_header(client),
    )
    rows = response.get_json()["response"]["admin-users-grid"]["rowData"]
    assert [row["email"] for row in rows] == ["admin@example.com"]


def test_unknown_page_is_a_404(dash_app, client, auth):
    auth.login_as(Role.VIEWER)
    assert client.get("/no/such/page").status_code == 404
    response = client.post(
        "/_dash-update-component",
        json=callback_body(dash_app, ROUTER, "/no/such/page"),
        headers=csrf_header(client),
    )
    assert '"error-404"' in json.dumps(response.get_json())


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST, Role.ADMIN], ids=str)
def test_navigation_shows_only_what_the_role_may_open(client, auth, role):
    auth.login_as(role)
    links = set(hrefs(client.get("/_dash-layout").get_json()))
    expected = {path for path, required in PAGE_RULES.items() if allowed(role, required)}
    assert links == expected - {"/404"} | {"/logout"}


def hrefs(node):
    """Every href in a Dash layout (JSON), depth first."""
    if isinstance(node, dict):
        if isinstance(node.get("href"), str):
            yield node["href"]
        for value in node.values():
            yield from hrefs(value)
    elif isinstance(node, list):
        for value in node:
            yield from hrefs(value)


@pytest.mark.parametrize("path", ["/_dash-layout", "/_dash-dependencies", "/api/v1/me"])
def test_app_data_needs_a_session(client, path):
    assert client.get(path).status_code == 401


# Every Flask route outside Dash's own: (endpoint, method) -> the lowest role that may call it,
# or PUBLIC. Dash's routes are the pages and callbacks above (DASH_ROUTES says which).
PUBLIC = "public"
ROUTE_RULES = {
    ("api.list_datasets", "GET"): Role.VIEWER,
    ("api.describe_dataset", "GET"): Role.VIEWER,
    ("api.list_events", "GET"): Role.VIEWER,
    ("api.series", "GET"): Role.VIEWER,
    ("api.push_events", "POST"): Role.ANALYST,
    ("api.live_token", "GET"): Role.VIEWER,
    ("api.me", "GET"): Role.VIEWER,
    ("api.openapi", "GET"): PUBLIC,
    ("api.docs", "GET"): PUBLIC,
    ("health.healthz", "GET"): PUBLIC,
    ("health.readyz", "GET"): PUBLIC,
    ("metrics.metrics", "GET"): PUBLIC,  # from loopback; else the metrics token or an admin
    ("auth.login", "GET"): PUBLIC,
    ("auth.login", "POST"): PUBLIC,
    ("auth.logout", "GET"): PUBLIC,
    ("auth.logout", "POST"): PUBLIC,
    ("set_password.form", "GET"): PUBLIC,  # the link's signed token is the credential
    ("set_password.form", "POST"): PUBLIC,
    ("static", "GET"): PUBLIC,
    ("_dash_assets.static", "GET"): PUBLIC,
}
DASH_ROUTES = {  # served by Dash: pages (PAGE_RULES), callbacks (CALLBACK_RULES), its bundles
    "/",
    "/<path:path>",
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
    "/_dash-dependencies",
    "/_dash-layout",
    "/_dash-update-component",
    "/_favicon.ico",
    "/_reload-hash",
}
# Messages a live hub client may send -> the lowest role (the dataset's visibility on top).
HUB_RULES = {"subscribe": Role.VIEWER, "unsubscribe": Role.VIEWER}


def flask_routes(app) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.rule not in DASH_ROUTES
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_a_rule(app):
    assert flask_routes(app) == set(ROUTE_RULES)


def test_every_hub_message_type_has_a_rule():
    from app.guard import HUB_MESSAGE_ROLES
    from app.hub.protocol import CLIENT_TYPES

    assert set(CLIENT_TYPES) == set(HUB_RULES) == set(HUB_MESSAGE_ROLES)
    assert HUB_RULES == HUB_MESSAGE_ROLES


def route_url(app, endpoint: str) -> str:
    rule = next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)
    file = "auth.css" if endpoint == "static" else "shell.css"
    return rule.rule.replace("<name>", "matrix").replace("<path:filename>", file)


@pytest.fixture
def matrix_dataset(app, auth):
    """A dataset everyone signed in may see, pushed by an admin."""
    token = auth.api_token("owner@example.com", Role.ADMIN)
    response = app.test_client().post(
        "/api/v1/datasets/matrix/events",
        json=[{"time": "2024-05-01T10:00:00Z", "n": 1}],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
@pytest.mark.parametrize(
    ("endpoint", "method"),
    sorted(key for key, rule in ROUTE_RULES.items() if rule != PUBLIC and key[0] != "static"),
)
def test_route_matrix(app, auth, matrix_dataset, role, endpoint, method):
    """Each API route, called with a token of each role (or none): refused below its role."""
    headers = {}
    if role is not None:
        headers["Authorization"] = f"Bearer {auth.api_token(f'{role.value}-m@example.com', role)}"
    client = app.test_client()
    url = route_url(app, endpoint)
    body = [{"time": "2024-05-01T10:01:00Z", "n": 2}] if method == "POST" else None
    response = client.open(url, method=method, headers=headers, json=body)
    required = ROUTE_RULES[(endpoint, method)]
    if role is None:
        assert response.status_code == 401, (url, response.status_code)
    elif allowed(role, required):
        assert response.status_code < 400, (url, role, response.get_json())
    else:
        assert response.status_code == 403, (url, role, response.status_code)


@pytest.mark.parametrize(
    ("endpoint", "method"), sorted(key for key, rule in ROUTE_RULES.items() if rule == PUBLIC)
)
def test_public_routes_answer_without_signing_in(app, endpoint, method):
    """A public route is never refused, nor sent to the sign-in page, for want of a session."""
    url = route_url(app, endpoint)
    response = app.test_client().open(url, method=method)
    response.close()  # a static file answers with an open file
    assert response.status_code not in (401, 403, 404), (url, response.status_code)
    assert "/login?next=" not in response.headers.get("Location", ""), url


@pytest.mark.parametrize("role", ROLES[1:], ids=lambda r: r.value)
def test_hub_message_matrix(client, auth, make_hub, matrix_dataset, role):  # noqa: F811
    """Each client message type, sent by each role over a real hub connection."""
    hub = make_hub()
    sign_in(auth, role)
    token = client.get("/api/v1/live/token").get_json()["token"]
    with open_live(hub, token) as ws:
        for message_type, required in HUB_RULES.items():
            ws.send(json.dumps({"type": message_type, "dataset": "matrix"}))
            try:
                answer = receive(ws, timeout=0.5)  # unsubscribe answers only when refused
            except TimeoutError:
                answer = {"type": "none"}
            if allowed(role, required):
                assert answer["type"] in ("subscribed", "none"), (message_type, answer)
            else:
                assert answer["type"] == "error", (message_type, answer)


def test_anonymous_cannot_reach_the_hub(client):
    assert client.get("/api/v1/live/token").status_code == 401
