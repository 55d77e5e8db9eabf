import dash
import dash_mantine_components as dmc
from flask_login import current_user

from app.components.shell import ROLE_COLORS, nav_pages

dash.register_page(__name__, path="/", name="Home", order=0)

ROLE_TEXT = {
    "viewer": "You can open dashboards, explore data and export it.",
    "analyst": "You can explore data, upload CSV files, schedule ingest jobs and save dashboards.",
    "admin": "You can do everything, including managing users and reading the audit log.",
}


def _card(page: dict) -> dmc.Card:
    return dmc.Card(
        [
            dmc.Group(
                [
                    dmc.Text(page["name"], fw=600),
                    dmc.Badge("soon", color="gray", variant="light")
                    if page.get("placeholder")
                    else None,
                ],
                justify="space-between",
            ),
            dmc.Text(page.get("description", ""), size="sm", c="dimmed", mt="xs"),
            dmc.Anchor("Open", href=page["relative_path"], mt="sm", size="sm"),
        ],
        withBorder=True,
        shadow="sm",
        padding="lg",
    )


def layout(**_query):
    pages = [page for page in nav_pages() if page["path"] != "/"]
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title(f"Welcome, {current_user.email}", order=2, id="home-title"),
                    dmc.Badge(current_user.role, color=ROLE_COLORS[current_user.role], size="lg"),
                ]
            ),
            dmc.Text(ROLE_TEXT[current_user.role], c="dimmed"),
            dmc.SimpleGrid([_card(page) for page in pages], cols={"base": 1, "sm": 2, "lg": 3}),
        ],
        id="home-page",
    )
