import dash

from app.components.errors import not_found_layout

dash.register_page(__name__, path="/404", name="Not found", nav=False)


def layout(**_query):
    return not_found_layout()
