#!/usr/bin/env bash
# Start gunicorn (2 workers), two hubs (8051, 8052) and two workers on one PostgreSQL;
# Ctrl-C or SIGTERM stops them all. Without DATABASE_URL the embedded server is used.
# Options: --web-port, --web-workers, --hub-ports 8051,8052, --workers, --host,
# --worker-metrics-ports 9101,9102 (each worker's Prometheus /metrics; hubs and web have theirs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m deploy.cluster "$@"
