import dash

from app.components.errors import placeholder

dash.register_page(
    __name__,
    path="/datasets",
    name="Datasets & upload",
    order=4,
    required_role="analyst",
    placeholder=True,
    description="Upload CSV files, define datasets and see rejected rows.",
)


def layout(**_query):
    return placeholder(3, "Upload CSV files, define datasets and see rejected rows.")
