import dash

from app.components.errors import placeholder

dash.register_page(
    __name__,
    path="/explore",
    name="Explore",
    order=1,
    required_role="viewer",
    placeholder=True,
    description="Pick a dataset, a time range and an aggregate, and chart it.",
)


def layout(**_query):
    return placeholder(5, "Pick a dataset, a time range and an aggregate, and chart it.")
