"""The app shell: header with user menu and theme switch, role-filtered navigation."""

from __future__ import annotations

import json
from typing import Any

import dash
import dash_mantine_components as dmc
from dash import Input, Output, dcc, html
from flask_login import current_user

from app.guard import can_access, page_role

ROLE_COLORS = {"admin": "red", "analyst": "teal", "viewer": "gray"}
THEME = {
    "primaryColor": "indigo",
    "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "defaultRadius": "md",
}


def nav_pages() -> list[dict[str, Any]]:
    """Return the registered pages the current user may open, in navigation order."""
    return [
        page
        for page in dash.page_registry.values()
        if page.get("nav", True)
        and not page["module"].endswith("not_found_404")
        and can_access(page_role(page))
    ]


def _nav_link(page: dict[str, Any]) -> dmc.NavLink:
    badge = (
        dmc.Badge("soon", size="xs", variant="light", color="gray")
        if page.get("placeholder")
        else None
    )
    return dmc.NavLink(
        label=page["name"],
        href=page["relative_path"],
        id={"type": "shell-nav", "path": page["path"]},
        rightSection=badge,
        active="exact",
    )


def _user_menu() -> dmc.Menu:
    role = current_user.role
    return dmc.Menu(
        [
            dmc.MenuTarget(
                dmc.Button(
                    dmc.Group(
                        [
                            dmc.Avatar(current_user.email[:1].upper(), radius="xl", size="sm"),
                            dmc.Text(  # narrow screens: the avatar, and the menu says who
                                current_user.email, id="shell-user-email", visibleFrom="sm"
                            ),
                            dmc.Badge(role, color=ROLE_COLORS[role], id="shell-role-badge"),
                        ],
                        gap="xs",
                    ),
                    variant="subtle",
                    id="shell-user-menu",
                )
            ),
            dmc.MenuDropdown(
                [
                    dmc.MenuLabel(f"Signed in as {current_user.email}"),
                    dmc.MenuItem("Sign out", href="/logout", refresh=True, id="shell-logout"),
                ]
            ),
        ],
        position="bottom-end",
    )


def navbar_settings(opened: bool) -> dict[str, Any]:
    """The navigation beside the page from the ``sm`` breakpoint up; below it, opened by the
    header's burger over the page and closed again by it or by following a link."""
    return {"width": 230, "breakpoint": "sm", "collapsed": {"mobile": not opened}}


def shell_layout() -> Any:
    """Build the page frame for the signed-in user (the guard keeps anonymous users out)."""
    if not current_user.is_authenticated:
        return html.Div("Sign in at /login")
    header = dmc.Group(
        [
            dmc.Group(
                [
                    dmc.Burger(
                        id="shell-burger",
                        hiddenFrom="sm",
                        size="sm",
                        opened=False,
                        **{"aria-label": "Navigation"},
                    ),
                    html.Img(src="/assets/logo.svg", className="shell-logo", alt=""),
                    dmc.Title("Insight-Wave", order=3, visibleFrom="xs"),
                ],
                gap="xs",
                wrap="nowrap",
            ),
            dmc.Group(
                [
                    dmc.Switch(
                        id="shell-theme-switch",
                        label="Dark",
                        size="sm",
                        persistence=True,
                        persistence_type="local",
                    ),
                    _user_menu(),
                ],
                gap="md",
                wrap="nowrap",
            ),
        ],
        justify="space-between",
        wrap="nowrap",
        h="100%",
        px="md",
    )
    return dmc.MantineProvider(
        id="shell-provider",
        theme=THEME,
        forceColorScheme="light",
        children=[
            dcc.Location(id="shell-location"),
            dmc.AppShell(
                [
                    dmc.AppShellHeader(header),
                    dmc.AppShellNavbar(
                        [_nav_link(page) for page in nav_pages()], p="sm", id="shell-navbar"
                    ),
                    dmc.AppShellMain(dash.page_container, id="shell-main"),
                ],
                header={"height": 60},
                navbar=navbar_settings(opened=False),
                padding="lg",
                id="shell",
            ),
        ],
    )


def register_shell_callbacks(dash_app: dash.Dash) -> None:
    """Switch the theme and open or close the narrow screens' navigation in the browser.

    Mantine marks ``<html>``; AG Grid's built-in theme follows ``data-ag-theme-mode`` on a
    parent of its grids; Plotly's charts follow the stylesheet (``assets/shell.css``).
    """
    dash_app.clientside_callback(  # type: ignore[no-untyped-call]
        """function (dark) {
            const scheme = dark ? 'dark' : 'light';
            document.body.dataset.agThemeMode = scheme;
            return scheme;
        }""",
        Output("shell-provider", "forceColorScheme"),
        Input("shell-theme-switch", "checked"),
    )
    dash_app.clientside_callback(  # type: ignore[no-untyped-call]
        f"""function (opened) {{
            const settings = {json.dumps(navbar_settings(opened=False))};
            settings.collapsed.mobile = !opened;
            return settings;
        }}""",
        Output("shell", "navbar"),
        Input("shell-burger", "opened"),
    )
    dash_app.clientside_callback(  # type: ignore[no-untyped-call]
        "function (_path) { return false; }",  # a link followed closes the navigation
        Output("shell-burger", "opened"),
        Input("shell-location", "pathname"),
        prevent_initial_call=True,
    )
