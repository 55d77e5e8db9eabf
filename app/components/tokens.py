"""The API tokens page: a form to create one, the token shown once, the user's own tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import dcc, html

from app.components.grid import PICK_ONE_ROW, row_id
from app.models import ApiToken

EXPIRY_CHOICES = {"never": None, "7": 7, "30": 30, "90": 90, "365": 365}  # days
COLUMNS = [
    {"field": "name", "flex": 2},
    {"field": "prefix", "headerName": "Starts with"},
    {"field": "status"},
    {"field": "created_at", "headerName": "Created"},
    {"field": "expires_at", "headerName": "Expires"},
    {"field": "last_used_at", "headerName": "Last used"},
]


def tokens_page(rows: list[dict[str, Any]]) -> dmc.Stack:
    return dmc.Stack(
        [
            dmc.Title("API tokens", order=2),
            dmc.Text(
                "Programs use a token as `Authorization: Bearer <token>`; it carries your role. "
                "A token is shown once, when it is created.",
                c="dimmed",
                size="sm",
            ),
            dmc.Group(
                [
                    dmc.TextInput(id="tokens-name", label="Name", placeholder="ci-pusher", w=260),
                    dmc.Select(
                        id="tokens-expiry",
                        label="Expires",
                        data=[
                            {"value": "never", "label": "never"},
                            {"value": "7", "label": "in 7 days"},
                            {"value": "30", "label": "in 30 days"},
                            {"value": "90", "label": "in 90 days"},
                            {"value": "365", "label": "in a year"},
                        ],
                        value="90",
                        w=160,
                    ),
                    dmc.Button("Create token", id="tokens-create", mt="lg"),
                ],
                align="flex-start",
            ),
            html.Div(id="tokens-created"),
            dmc.Group(
                [
                    dmc.Title("Your tokens", order=4),
                    dmc.Button("Revoke selected", id="tokens-revoke", color="red", variant="light"),
                ],
                justify="space-between",
            ),
            dcc.ConfirmDialog(id="tokens-revoke-confirm"),
            dmc.Text(id="tokens-message", size="sm"),
            dag.AgGrid(
                id="tokens-grid",
                columnDefs=COLUMNS,
                rowData=rows,
                getRowId=row_id(),
                columnSize="responsiveSizeToFit",
                dashGridOptions={
                    **PICK_ONE_ROW,
                    "rowSelection": {**PICK_ONE_ROW["rowSelection"], "checkboxes": True},
                },
            ),
        ],
        gap="md",
    )


def shown_once(token: str) -> dmc.Alert:
    return dmc.Alert(
        [
            dmc.Text("Copy it now: it will not be shown again."),
            dmc.Group(
                [dmc.Code(token, id="tokens-secret"), dcc.Clipboard(target_id="tokens-secret")]
            ),
        ],
        title="Token created",
        color="green",
    )


def expiry_from(choice: Any) -> datetime | None:
    """Turn the expiry choice into a time; anything unknown is refused with ValueError."""
    if choice not in EXPIRY_CHOICES:
        raise ValueError("choose when the token expires")
    days = EXPIRY_CHOICES[choice]
    return datetime.now(UTC) + timedelta(days=days) if days else None


def token_rows(tokens: list[ApiToken]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)

    def stamp(value: datetime | None) -> str | None:
        return value.isoformat(timespec="minutes") if value else None

    def status(token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        if token.expires_at is not None and token.expires_at <= now:
            return "expired"
        return "active"

    return [
        {
            "id": str(token.id),
            "name": token.name,
            "prefix": token.prefix + "…",
            "status": status(token),
            "created_at": stamp(token.created_at),
            "expires_at": stamp(token.expires_at) or "never",
            "last_used_at": stamp(token.last_used_at),
        }
        for token in reversed(tokens)
    ]
