#!/usr/bin/env python3
"""Proves that infra/check-deployed-builds.py catches a leak into a deployed build.

    .venv/bin/python infra/test-check-deployed-builds.py    (run by `make check-deployed`)

Writes a broken copy of template.yaml — the checkout built at the workspace root (`CodeUri: .`),
as the template did before issue 28 — and asserts that the check fails on it, naming the
store's `operators` or `test-support` feature in the checkout: at the root Cargo resolves the
features of every member at once, so what the test kit and the `mall` command enable reaches the
checkout. The check stops that build as soon as the store is compiled, so this costs the
dependencies' build in that feature set once, then seconds.
Exit 0 when the check refuses the broken copy for that reason, 1 otherwise.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "infra" / "check-deployed-builds.py"


def broken_copy(text: str) -> str:
    """The checkout built from the workspace root; the other functions left out."""
    resources = text.split("\nResources:\n", 1)
    if len(resources) != 2 or text.count("CodeUri: functions/checkout") != 1:
        raise SystemExit("test-check-deployed: template.yaml changed shape: update broken_copy()")
    text = text.replace("CodeUri: functions/checkout", "CodeUri: .")
    # Only the checkout: the others are checked on the real template.
    for name in ("reward-worker", "retry-failed"):
        text = re.sub(
            rf"\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: {name}\n",
            "\n      BuildMethod: not-built-in-this-copy\n",
            text,
        )
    return text


def main() -> int:
    template = (ROOT / "template.yaml").read_text()
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "template.yaml"
        copy.write_text(broken_copy(template))
        run = subprocess.run(
            [sys.executable, str(CHECK), "--template", str(copy)],
            capture_output=True,
            text=True,
        )
    failures = [line for line in run.stderr.splitlines() if "FAIL:" in line]
    caught = any(
        "`mall-store` is compiled into checkout" in line
        and ("operators" in line or "test-support" in line)
        for line in failures
    )
    if run.returncode == 1 and caught:
        print(f"test-check-deployed: the checkout built at the workspace root is refused: {failures[0]}")
        return 0
    print(
        f"test-check-deployed: FAIL: the check did not refuse the checkout built at the "
        f"workspace root for the store's features (exit {run.returncode}):\n{run.stderr[-3000:]}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
