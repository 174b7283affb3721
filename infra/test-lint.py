#!/usr/bin/env python3
"""Proves that infra/lint-template.sh catches real mistakes in template.yaml.

    python3 infra/test-lint.py [TEMPLATE]      (default: template.yaml; run by `make lint-template`)

Writes broken copies of the template to a temporary directory, one mistake each, lints each
copy once with infra/lint-template.sh (which runs `sam validate --lint` and then cfn-lint on
the SAM-translated template), and asserts that:
- the unbroken template passes both linters;
- every broken copy is rejected, and the translated-template lint reports the rule that the
  mistake should trip (so a copy rejected for some unrelated reason does not count).
It prints, for each mistake, whether `sam validate --lint` alone would have caught it.
Each mistake is a text substitution that must match the template exactly once: if the template
changes so that a substitution no longer applies, the test fails and says which one to update.
Exit 0 when all of this holds, 1 otherwise.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = ROOT / "infra" / "lint-template.sh"


@dataclass(frozen=True)
class Mistake:
    name: str
    what: str
    old: str
    new: str
    rule: str  # the cfn-lint rule the translated template must trip


MISTAKES = [
    Mistake(
        "bad-architecture",
        "Architectures: [arm65]",
        "Architectures: [arm64]",
        "Architectures: [arm65]",
        "E3030",
    ),
    Mistake(
        "timeout-out-of-range",
        "worker Timeout: 901 (Lambda's maximum is 900)",
        "Timeout: 300\n",
        "Timeout: 901\n",
        "E3717",
    ),
    Mistake(
        "malformed-rate",
        "schedule rate(1 minutes) (1 takes the singular)",
        "Schedule: !Ref WorkerScheduleRate",
        "Schedule: rate(1 minutes)",
        "E3027",
    ),
    Mistake(
        "getatt-no-such-attribute",
        "Output !GetAtt CheckoutFunction.Nope",
        "Value: !GetAtt MallEventBus.Arn",
        "Value: !GetAtt CheckoutFunction.Nope",
        "E6101",
    ),
    Mistake(
        "getatt-in-function-policy",
        "checkout policy Resource: !GetAtt MallEventBus.Nope",
        "Resource: !GetAtt MallEventBus.Arn",
        "Resource: !GetAtt MallEventBus.Nope",
        "E1010",
    ),
    Mistake(
        "ref-typo-in-event",
        "worker's EventBridgeRule on !Ref MallEventBuss",
        "EventBusName: !Ref MallEventBus\n            Pattern:",
        "EventBusName: !Ref MallEventBuss\n            Pattern:",
        "E1020",
    ),
    Mistake(
        "runtime-typo",
        "Runtime: provided.al2024",
        "Runtime: provided.al2023",
        "Runtime: provided.al2024",
        "E3030",
    ),
    Mistake(
        "iam-action-typo",
        "checkout may events:PutEvent (no such action)",
        "Action: events:PutEvents",
        "Action: events:PutEvent",
        "W3037",
    ),
    Mistake(
        "alarm-statistic",
        "alarm Statistic: Max (must be Maximum)",
        "Statistic: Maximum",
        "Statistic: Max",
        "E3030",
    ),
]

FINDING = re.compile(r"^\s+([EWI]\d{4}) ", re.MULTILINE)


@dataclass
class Outcome:
    status: int  # lint-template.sh's exit status: bit 1 sam validate, bit 2 translated lint
    rules: set[str]
    output: str


def lint(template: Path, out_dir: Path) -> Outcome:
    env = dict(os.environ, LINT_OUT_DIR=str(out_dir))
    run = subprocess.run(
        [str(LINT), str(template)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    return Outcome(run.returncode, set(FINDING.findall(run.stdout)), run.stdout)


def main(argv: list[str]) -> int:
    template = Path(argv[1] if len(argv) > 1 else ROOT / "template.yaml")
    source = template.read_text(encoding="utf-8")
    problems: list[str] = []

    with tempfile.TemporaryDirectory(prefix="lint-test-") as tmp:
        work = Path(tmp)
        jobs: dict[str, Path] = {"unbroken": template}
        for m in MISTAKES:
            count = source.count(m.old)
            if count != 1:
                problems.append(f"{m.name}: {m.old!r} occurs {count} times in {template}; update the case")
                continue
            copy = work / m.name / "template.yaml"
            copy.parent.mkdir()
            copy.write_text(source.replace(m.old, m.new), encoding="utf-8")
            jobs[m.name] = copy

        workers = int(os.environ.get("LINT_TEST_JOBS", "2"))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {name: pool.submit(lint, path, work / "out") for name, path in jobs.items()}
            outcomes = {name: f.result() for name, f in futures.items()}

    good = outcomes["unbroken"]
    if good.status != 0:
        problems.append(f"the unbroken template was rejected (exit {good.status}):\n{good.output}")

    rows = []
    for m in MISTAKES:
        if m.name not in outcomes:
            continue
        o = outcomes[m.name]
        sam_alone = "caught" if o.status & 1 else "MISSED"
        combined = "caught" if o.status in (1, 2, 3) else "MISSED"
        found = m.rule in o.rules
        rows.append((m.name, m.what, sam_alone, combined, m.rule if found else f"{m.rule} missing"))
        if o.status not in (1, 2, 3):
            problems.append(f"{m.name}: not rejected by the combined lint (exit {o.status}):\n{o.output}")
        elif not found:
            problems.append(
                f"{m.name}: rejected, but the translated lint did not report {m.rule} "
                f"(got {sorted(o.rules) or 'nothing'}):\n{o.output}"
            )

    head = ("mistake", "what", "sam validate --lint", "combined", "rule")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    missed = sum(1 for r in rows if r[2] == "MISSED")
    print(f"unbroken template: {'passed' if good.status == 0 else 'REJECTED'}; "
          f"sam validate --lint alone missed {missed} of {len(rows)} mistakes")

    for p in problems:
        print(f"test-lint: FAIL {p}", file=sys.stderr)
    passed = len(MISTAKES) + 1 - len(problems)
    print(f"test-lint: {max(passed, 0)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
