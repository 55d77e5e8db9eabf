"""Dash components shared by pages: the shell, error pages, placeholders."""
