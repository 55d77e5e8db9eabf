"""Audit the installed (pinned) dependencies with pip-audit; ``./dev test`` runs this.

Fails on any known vulnerability not answered in ``pip-audit-ignore.txt``. pip-audit needs a
vulnerability source on the network (PyPI's JSON API, else OSV); where neither answers (a
machine that reaches only a package index mirror) it says so plainly and passes: nothing was
audited, which is not the same as nothing found.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

IGNORE_FILE = Path(__file__).with_name("pip-audit-ignore.txt")
SERVICES = ("pypi", "osv")


def ignored_ids() -> list[str]:
    """Return the vulnerability ids answered in the ignore file (``ID  # why``)."""
    ids = []
    for line in IGNORE_FILE.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            ids.append(entry)
    return ids


def audit(service: str, ignore: list[str]) -> list[dict[str, object]]:
    command = [
        sys.executable, "-m", "pip_audit",
        "--vulnerability-service", service,
        "--skip-editable", "--progress-spinner", "off", "--format", "json",
        *(f"--ignore-vuln={vuln}" for vuln in ignore),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)  # noqa: S603
    except subprocess.TimeoutExpired:
        return []
    match = re.search(r"\{.*\}", done.stdout, re.S)
    if match is None:
        return []
    dependencies: list[dict[str, object]] = json.loads(match.group(0))["dependencies"]
    return dependencies


def main() -> int:
    ignore = ignored_ids()
    for service in SERVICES:
        dependencies = audit(service, ignore)
        audited = [dep for dep in dependencies if "skip_reason" not in dep]
        if not audited:
            continue
        vulnerable = [dep for dep in audited if dep.get("vulns")]
        for dep in vulnerable:
            for vuln in dep["vulns"]:  # type: ignore[attr-defined]
                fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
                print(f"pip-audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
        if vulnerable:
            print(f"pip-audit: answer each in {IGNORE_FILE.name} or upgrade the pin.")
            return 1
        print(f"pip-audit ({service}): {len(audited)} dependencies, no known vulnerabilities.")
        return 0
    print(
        "pip-audit: NOT AUDITED - no vulnerability source answered (PyPI's JSON API and OSV are "
        "not reachable from this machine). Run ./dev test where they are to get an answer."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
