import dash

from app.components.errors import placeholder

dash.register_page(
    __name__,
    path="/live",
    name="Live",
    order=3,
    required_role="viewer",
    placeholder=True,
    description="Graphs that move as data arrives, pushed over WebSockets.",
)


def layout(**_query):
    return placeholder(4, "Graphs that move as data arrives, pushed over WebSockets.")
