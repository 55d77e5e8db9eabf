"""Deployment: the local multi-process cluster (``python -m deploy.cluster``)."""
