"""The pieces of the account page: the password form and the user's own sessions."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import dash_mantine_components as dmc
from dash import dcc, html

from app.components.grid import selectable_grid
from app.components.tokens import tokens_page
from app.passwords import MIN_PASSWORD_LENGTH
from app.sessions import SessionRecord

SESSION_COLUMNS = [
    {"field": "this", "headerName": ""},
    {"field": "created_at", "headerName": "Signed in (UTC)"},
    {"field": "last_seen_at", "headerName": "Last seen (UTC)"},
    {"field": "expires_at", "headerName": "Expires (UTC)"},
    {"field": "ip", "headerName": "Address"},
    {"field": "user_agent", "headerName": "Browser", "flex": 2, "tooltipField": "user_agent"},
]


def account_page(email: str, sessions: list[dict[str, Any]], tokens: list[dict[str, Any]]) -> Any:
    return dmc.Stack(
        [
            dmc.Title("Your account", order=2),
            dmc.Text(email, c="dimmed"),
            dcc.Location(id="account-location", refresh=True),
            dmc.Title("Change your password", order=4),
            dmc.Group(
                [
                    dmc.PasswordInput(id="account-current", label="Current password", w=220),
                    dmc.PasswordInput(
                        id="account-new",
                        label="New password",
                        description=f"At least {MIN_PASSWORD_LENGTH} characters, not a common one",
                        w=260,
                    ),
                    dmc.PasswordInput(id="account-confirm", label="New password again", w=220),
                    dmc.Button("Change password", id="account-change-password", mt="lg"),
                ],
                align="flex-end",
            ),
            html.Div(id="account-password-message"),
            dmc.Group(
                [
                    dmc.Title("Where you are signed in", order=4),
                    dmc.Button(
                        "Sign out selected", id="account-revoke", color="red", variant="light"
                    ),
                ],
                justify="space-between",
            ),
            dcc.ConfirmDialog(id="account-revoke-confirm"),
            html.Div(id="account-sessions-message"),
            selectable_grid("account-sessions-grid", SESSION_COLUMNS, sessions, "id"),
            # The tokens page's own pieces, so its callbacks serve them here too.
            tokens_page(tokens),
        ],
        gap="md",
    )


def session_rows(sessions: list[SessionRecord], current: str) -> list[dict[str, Any]]:
    def stamp(value: Any) -> str | None:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else None

    return [
        {
            "id": row.id[: len(current)],
            "this": "current" if row.id.startswith(current) else "",
            "created_at": stamp(row.created_at),
            "last_seen_at": stamp(row.last_seen_at),
            "expires_at": stamp(row.expires_at),
            "ip": row.ip,
            "user_agent": row.user_agent,
        }
        for row in sessions
    ]


def alert(text: str, ok: bool, prefix: str) -> dmc.Alert:
    return dmc.Alert(
        text, id=f"{prefix}-{'done' if ok else 'error'}", color="green" if ok else "red"
    )
