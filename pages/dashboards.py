import dash

from app.components.errors import placeholder

dash.register_page(
    __name__,
    path="/dashboards",
    name="Dashboards",
    order=2,
    required_role="viewer",
    placeholder=True,
    description="Saved dashboards of historical and live charts.",
)


def layout(**_query):
    return placeholder(5, "Saved dashboards of historical and live charts.")
