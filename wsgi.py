"""WSGI entry point: ``gunicorn wsgi:server``."""

from app import create_app

server = create_app()
