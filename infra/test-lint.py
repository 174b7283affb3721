#!/usr/bin/env python3
"""Proves that infra/lint-template.sh catches real mistakes in template.yaml.

    python3 infra/test-lint.py [TEMPLATE]      (default: template.yaml; run by `make lint-template`)

Writes broken copies of the template to a temporary directory, one mistake each, lints each
copy once with infra/lint-template.sh (which runs `sam validate --lint` and then, per identity
mode, cfn-lint on the SAM-translated template), and asserts that:
- the unbroken template passes both linters;
- every broken copy is rejected, and the translated-template lint reports the rule that the
  mistake should trip (so a copy rejected for some unrelated reason does not count); a rule
  named Rules/NAME is the template's own Rules section refusing the sample parameter values.
It prints, for each mistake, whether `sam validate --lint` alone would have caught it.
Each mistake is a text substitution that must match the template exactly once: if the template
changes so that a substitution no longer applies, the test fails and says which one to update.

Then it checks what the unbroken template deploys, per identity mode (infra/sam_translate.py
--resolved: conditions evaluated as CloudFormation would):
- AppToken: no authorizer, both routes AuthorizationType NONE; the checkout function gets
  IDENTITY_MODE=app-token and APP_JWT_SECRET_ARN (the parameter, never its value) and may only
  secretsmanager:GetSecretValue on exactly that ARN;
- Jwt: both routes use the JWT authorizer (issuer and audience from the parameters); the function
  gets IDENTITY_MODE=authorizer and no secret, and no secretsmanager permission;
- in both: the routes reach the checkout function, the 5xx alarm and the ApiUrl output name the
  API that exists, and the dashboard body is JSON once substituted, its worker-timeout line at
  the worker's Timeout;
- parameter values CloudFormation must refuse are refused (AllowedPattern, Rules).
Exit 0 when all of this holds, 1 otherwise.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = ROOT / "infra" / "lint-template.sh"
TRANSLATE = ROOT / "infra" / "sam_translate.py"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"  # lint-template.sh has made it


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
    Mistake(
        "alarm-metric-math-id",
        "5xx alarm metric Id: Errors (must start lowercase)",
        "- Id: errors",
        "- Id: Errors",
        "E3031",
    ),
    Mistake(
        "dashboard-sub-typo",
        "dashboard names ${RewardWorkerFunctio}",
        '"FunctionName", "${RewardWorkerFunction}", {"stat": "p99"',
        '"FunctionName", "${RewardWorkerFunctio}", {"stat": "p99"',
        "E1019",
    ),
    Mistake(
        "rule-in-the-wrong-mode",
        "the issuer rule guards AppToken instead of Jwt",
        "RuleCondition: !Equals [!Ref IdentityMode, Jwt]",
        "RuleCondition: !Equals [!Ref IdentityMode, AppToken]",
        "Rules/JwtModeNeedsIssuerAndAudience",
    ),
]

FINDING = re.compile(r"^\s+([EWI]\d{4}) ", re.MULTILINE)
# infra/sam_translate.py: "CloudFormation would refuse ... with ...: rule NAME: ..."
REFUSED = re.compile(r"CloudFormation would refuse .*?: rule (\w+): ")


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
    rules = set(FINDING.findall(run.stdout)) | {f"Rules/{r}" for r in REFUSED.findall(run.stdout)}
    return Outcome(run.returncode, rules, run.stdout)


# ---------------------------------------------------------------- what each mode deploys

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mall/app-jwt-AbCdEf"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"
APP_TOKEN = {"IdentityMode": "AppToken", "AppJwtSecretArn": SECRET_ARN}
JWT = {"IdentityMode": "Jwt", "JwtIssuer": ISSUER, "JwtAudience": "mall-app,mall-web", "CustomerIdClaim": "sub"}
# Parameter values CloudFormation must refuse, and a word of the reason.
REFUSED_SETS = {
    "AppToken without AppJwtSecretArn": ({}, "AppTokenModeNeedsTheSecret"),
    "AppToken with a partial secret ARN": (
        dict(APP_TOKEN, AppJwtSecretArn=SECRET_ARN.rsplit("-", 1)[0]), "AppJwtSecretArn"),
    "Jwt without JwtIssuer": ({"IdentityMode": "Jwt", "JwtAudience": "mall-app"}, "JwtIssuer"),
    "Jwt without JwtAudience": ({"IdentityMode": "Jwt", "JwtIssuer": ISSUER}, "JwtAudience"),
    "Jwt with an http issuer": (dict(JWT, JwtIssuer="http://issuer.example"), "JwtIssuer"),
    "an unknown IdentityMode": ({"IdentityMode": "Cognito"}, "IdentityMode"),
    "a checkout concurrency the connection budget cannot hold": (
        dict(APP_TOKEN, DatabaseConnectionBudget="100", CheckoutReservedConcurrency="50"),
        "CheckoutConcurrencyFitsBudget100"),
    "a connection budget not offered": (dict(APP_TOKEN, DatabaseConnectionBudget="250"), "DatabaseConnectionBudget"),
}


def deploy(template: Path, out_dir: Path, name: str, params: dict[str, str]) -> tuple[int, str, dict | None]:
    """infra/sam_translate.py --resolved with these values: (exit status, stderr, deployed)."""
    deployed = out_dir / f"{name}.deployed.json"
    args = [str(VENV_PYTHON), str(TRANSLATE)]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    args += ["--resolved", str(deployed), str(template), str(out_dir / f"{name}.cfn.json")]
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    run = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    data = json.loads(deployed.read_text(encoding="utf-8")) if run.returncode == 0 else None
    return run.returncode, run.stderr, data


def _statements(role: dict) -> list[dict]:
    out = []
    for policy in role["Properties"].get("Policies") or []:
        statements = policy["PolicyDocument"]["Statement"]
        out += statements if isinstance(statements, list) else [statements]
    return out


def _check_common(mode: str, t: dict, fail) -> None:
    res = t["Resources"]
    api = res.get("CheckoutHttpApi", {})
    if api.get("Type") != "AWS::ApiGatewayV2::Api" or api["Properties"].get("ProtocolType") != "HTTP":
        fail(f"{mode}: no HTTP API CheckoutHttpApi")
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in res.values()
              if r["Type"] == "AWS::ApiGatewayV2::Route"}
    if set(routes) != {"POST /api/cart/checkout", "GET /api/cart/checkout/{transactionId}"}:
        fail(f"{mode}: routes are {sorted(routes)}")
    for key, route in routes.items():
        target = route.get("Target", {}).get("Fn::Sub", "")
        integration = res.get(target.removeprefix("integrations/${").rstrip("}"), {})
        if integration.get("Properties", {}).get("IntegrationUri") != {"Fn::GetAtt": ["CheckoutFunction", "Arn"]}:
            fail(f"{mode}: {key} does not reach the checkout function (Target {target!r})")
    permitted = {json.dumps(r["Properties"]["SourceArn"]) for r in res.values()
                 if r["Type"] == "AWS::Lambda::Permission" and r["Properties"].get("FunctionName") == {"Ref": "CheckoutFunction"}}
    for path in ("/POST/api/cart/checkout", "/GET/api/cart/checkout/*"):
        if not any("${CheckoutHttpApi}/*" + path in arn for arn in permitted):
            fail(f"{mode}: API Gateway may not invoke the checkout function on {path}")
    dims = [d for m in res["Checkout5xxRateAlarm"]["Properties"]["Metrics"] if "MetricStat" in m
            for d in m["MetricStat"]["Metric"]["Dimensions"]]
    if not dims or any(d != {"Name": "ApiId", "Value": {"Ref": "CheckoutHttpApi"}} for d in dims):
        fail(f"{mode}: the 5xx alarm does not watch CheckoutHttpApi: {dims}")
    if t["Outputs"]["ApiUrl"]["Value"] != {"Fn::GetAtt": ["CheckoutHttpApi", "ApiEndpoint"]}:
        fail(f"{mode}: ApiUrl is {t['Outputs']['ApiUrl']['Value']}")
    # The dashboard body is a Fn::Sub string: it must be JSON once substituted.
    # (Its second form: the string, then the variables it names beside the template's.)
    sub = res["MallDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
    numeric = {n for n, p in t["Parameters"].items() if p.get("Type") == "Number"} | set(variables)
    text = re.sub(r"\$\{([^}]+)\}", lambda m: "1" if m.group(1) in numeric else "x", body)
    try:
        widgets = json.loads(text)["widgets"]
    except (ValueError, KeyError) as e:
        fail(f"{mode}: the dashboard body is not JSON once substituted: {e}")
        return
    timeout_ms = int(res["RewardWorkerFunction"]["Properties"]["Timeout"]) * 1000
    duration = [w for w in widgets if any("Duration" in m for m in w.get("properties", {}).get("metrics", []))]
    lines = [a.get("value") for w in duration for a in w["properties"].get("annotations", {}).get("horizontal", [])]
    if lines != [timeout_ms]:
        fail(f"{mode}: the worker duration widget's timeout line is {lines}, the worker's Timeout is {timeout_ms} ms")


def _value(node, t: dict):
    """A property's value with the parameters at their defaults: Ref, Fn::FindInMap, Fn::Select."""
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref":
            return t["Parameters"][arg]["Default"]
        if fn == "Fn::FindInMap":
            name, top, second = (_value(a, t) for a in arg)
            return t["Mappings"][name][str(top)][str(second)]
        if fn == "Fn::Select":
            return _value(arg[1], t)[int(_value(arg[0], t))]
    return node


def check_connection_budget(mode: str, t: dict, fail) -> None:
    """With the default parameters: every instance at once within the budget, and the stage's
    throttle never lets in more checkouts than the checkout's cap (burst + rate x deadline)."""
    res = t["Resources"]
    budget = int(_value({"Ref": "DatabaseConnectionBudget"}, t))
    checkout = int(_value(res["CheckoutFunction"]["Properties"]["ReservedConcurrentExecutions"], t))
    workers = int(_value(res["RewardWorkerFunction"]["Properties"]["ReservedConcurrentExecutions"], t))
    retry = int(res["RetryFailedFunction"]["Properties"]["ReservedConcurrentExecutions"])
    worker_pool = int(res["RewardWorkerFunction"]["Properties"]["Environment"]["Variables"]["WORKER_CONCURRENCY"])
    operators = 10  # two `mall` commands, README "Connection budget"
    worst = checkout * 2 + workers * (worker_pool + 1) + retry * 2 + operators
    if worst > budget:
        fail(f"{mode}: worst case {worst} connections > DatabaseConnectionBudget {budget}")
    route = res["CheckoutHttpApiApiGatewayDefaultStage"]["Properties"]["DefaultRouteSettings"]
    burst = int(_value(route["ThrottlingBurstLimit"], t))
    rate = int(_value(route["ThrottlingRateLimit"], t))
    deadline_ms = int(res["CheckoutFunction"]["Properties"]["Environment"]["Variables"]["CHECKOUT_DEADLINE_MS"])
    if burst + rate * deadline_ms // 1000 > checkout or burst < 1:
        fail(f"{mode}: the stage lets {burst} + {rate}/s x {deadline_ms} ms in, the checkout's cap is {checkout}")


def check_app_token(t: dict, fail) -> None:
    res = t["Resources"]
    if any(r["Type"] == "AWS::ApiGatewayV2::Authorizer" for r in res.values()):
        fail("AppToken: an API Gateway authorizer exists")
    for r in res.values():
        if r["Type"] == "AWS::ApiGatewayV2::Route":
            p = r["Properties"]
            if p.get("AuthorizationType") != "NONE" or "AuthorizerId" in p:
                fail(f"AppToken: route {p['RouteKey']} has {p.get('AuthorizationType')} {p.get('AuthorizerId')}")
    env = res["CheckoutFunction"]["Properties"]["Environment"]["Variables"]
    if env.get("IDENTITY_MODE") != "app-token":
        fail(f"AppToken: IDENTITY_MODE is {env.get('IDENTITY_MODE')!r}")
    if env.get("APP_JWT_SECRET_ARN") != {"Ref": "AppJwtSecretArn"}:
        fail(f"AppToken: APP_JWT_SECRET_ARN is {env.get('APP_JWT_SECRET_ARN')!r}, not the parameter")
    if "AppJwtSecretArn" in json.dumps({k: v for k, v in env.items() if k != "APP_JWT_SECRET_ARN"}) or \
            re.search(r"resolve:secretsmanager:\$\{AppJwtSecretArn\}|resolve:secretsmanager:arn", json.dumps(t)):
        fail("AppToken: the app's JWT secret is resolved into the template")
    secret = [s for s in _statements(res["CheckoutFunctionRole"]) if "secretsmanager" in json.dumps(s)]
    want = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "AppJwtSecretArn"}}
    if len(secret) != 1 or {k: v for k, v in secret[0].items() if k != "Sid"} != want:
        fail(f"AppToken: the checkout role's secret statements are {secret}, want only {want}")


def check_jwt(t: dict, fail) -> None:
    res = t["Resources"]
    authorizers = {n: r["Properties"] for n, r in res.items() if r["Type"] == "AWS::ApiGatewayV2::Authorizer"}
    if list(authorizers) != ["CustomerJwtAuthorizer"]:
        fail(f"Jwt: authorizers are {list(authorizers)}")
        return
    a = authorizers["CustomerJwtAuthorizer"]
    if (a.get("AuthorizerType"), a.get("IdentitySource"), a.get("JwtConfiguration")) != (
            "JWT", ["$request.header.Authorization"],
            {"Issuer": {"Ref": "JwtIssuer"}, "Audience": {"Ref": "JwtAudience"}}):
        fail(f"Jwt: the authorizer is {a}")
    for r in res.values():
        if r["Type"] == "AWS::ApiGatewayV2::Route":
            p = r["Properties"]
            if (p.get("AuthorizationType"), p.get("AuthorizerId")) != ("JWT", {"Ref": "CustomerJwtAuthorizer"}):
                fail(f"Jwt: route {p['RouteKey']} has {p.get('AuthorizationType')} {p.get('AuthorizerId')}")
    env = res["CheckoutFunction"]["Properties"]["Environment"]["Variables"]
    if env.get("IDENTITY_MODE") != "authorizer" or "APP_JWT_SECRET_ARN" in env:
        fail(f"Jwt: IDENTITY_MODE {env.get('IDENTITY_MODE')!r}, APP_JWT_SECRET_ARN {env.get('APP_JWT_SECRET_ARN')!r}")
    if any("secretsmanager" in json.dumps(s) for s in _statements(res["CheckoutFunctionRole"])):
        fail("Jwt: the checkout role may read a secret")


def check_modes(template: Path, work: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The per-mode checks above: (problems, rows of what was checked)."""
    problems: list[str] = []
    rows: list[tuple[str, str]] = []
    out = work / "modes"
    out.mkdir()
    sets = {"AppToken": APP_TOKEN, "Jwt": JWT}
    sets.update({name: params for name, (params, _) in REFUSED_SETS.items()})
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(os.environ.get("LINT_TEST_JOBS", "2")))) as pool:
        futures = {name: pool.submit(deploy, template, out, f"m{i}", params)
                   for i, (name, params) in enumerate(sets.items())}
        results = {name: f.result() for name, f in futures.items()}
    for mode, check in (("AppToken", check_app_token), ("Jwt", check_jwt)):
        status, stderr, deployed = results[mode]
        before = len(problems)
        if deployed is None:
            problems.append(f"{mode}: the sample values were refused (exit {status}): {stderr.strip()}")
        else:
            check(deployed, problems.append)
            _check_common(mode, deployed, problems.append)
            check_connection_budget(mode, deployed, problems.append)
        rows.append((mode, "deploys as expected" if len(problems) == before else "WRONG"))
    for name, (_, reason) in REFUSED_SETS.items():
        status, stderr, _ = results[name]
        if status == 0:
            problems.append(f"{name}: accepted, CloudFormation would refuse it")
            rows.append((name, "ACCEPTED"))
        elif reason not in stderr:
            problems.append(f"{name}: refused, but not for {reason}: {stderr.strip()}")
            rows.append((name, "refused for another reason"))
        else:
            rows.append((name, "refused"))
    return problems, rows


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

        mode_problems, mode_rows = check_modes(template, work)

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

    width = max(len(name) for name, _ in mode_rows)
    for name, verdict in mode_rows:
        print(f"parameters {name.ljust(width)}  {verdict}")
    problems += mode_problems

    for p in problems:
        print(f"test-lint: FAIL {p}", file=sys.stderr)
    passed = len(MISTAKES) + 1 + len(mode_rows) - len(problems)
    print(f"test-lint: {max(passed, 0)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
