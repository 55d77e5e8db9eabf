import dash

from app.components.errors import placeholder

dash.register_page(
    __name__,
    path="/jobs",
    name="Ingest jobs",
    order=5,
    required_role="analyst",
    placeholder=True,
    description="Scheduled ingest jobs, their runs and retries.",
)


def layout(**_query):
    return placeholder(3, "Scheduled ingest jobs, their runs and retries.")
