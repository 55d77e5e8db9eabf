"""Dash pages: one file per page with its ``register_page``, ``layout`` and callbacks."""
