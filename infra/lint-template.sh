#!/usr/bin/env bash
# Lint a SAM template twice, offline (no network, no AWS account or credentials):
#
#   infra/lint-template.sh [TEMPLATE]        (default: template.yaml)
#
#   1. `sam validate --lint`: cfn-lint on the SAM template itself, against SAM's schema.
#   2. The SAM transform (infra/sam_translate.py, samtranslator) turns it into the plain
#      CloudFormation that would be deployed, and cfn-lint lints that. This is what catches
#      mistakes inside SAM resources that step 1 lets through: a bad architecture or runtime,
#      an out-of-range Timeout, a malformed schedule expression, a !Ref or !GetAtt to
#      something that does not exist in a function's events or policies, ... (infra/test-lint.py
#      proves it on broken copies of template.yaml).
#      Step 2 runs once per identity mode (IdentityMode AppToken, then Jwt), each with sample
#      values for the parameters that mode requires: the template's defaults alone are not a
#      deployable stack (its Rules refuse AppToken without AppJwtSecretArn), and the two modes
#      build different resources. Per mode the parameter values are checked against their
#      constraints and the template's Rules (as CloudFormation would before deploying), the
#      transform gets them, and cfn-lint lints for them (their conditions' branches, the values
#      their Refs resolve to). The template as deployed in that mode (conditions evaluated) is
#      written beside it for reading.
#
# Both steps always run. Errors and warnings fail a step; cfn-lint's informational notes do not.
# Exit status: 0 both passed; bit 1 (1) `sam validate --lint` rejected the template; bit 2 (2)
# the translated template was rejected in a mode (the sample values broke a constraint or a Rules
# assertion, the transform failed, or cfn-lint found a problem); 64 usage or setup error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
me="lint-template"

if [ "$#" -gt 1 ]; then
    echo "usage: $0 [TEMPLATE]" >&2
    exit 64
fi
TEMPLATE="${1:-template.yaml}"
[ -f "$TEMPLATE" ] || { echo "$me: no such template: $TEMPLATE" >&2; exit 64; }

"$ROOT/infra/venv.sh" >&2 || exit 64
BIN="$ROOT/.venv/bin"
for tool in sam cfn-lint python; do
    [ -x "$BIN/$tool" ] || { echo "$me: $BIN/$tool missing (infra/requirements.txt)" >&2; exit 64; }
done

# Offline: a region for the linters' and translator's region-specific checks and ARNs, dummy
# credentials so nothing goes looking for real ones, no telemetry, no instance metadata.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
export AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0

# The translated templates (and cfn-lint's findings) are kept for reading, in LINT_OUT_DIR
# (default .local/lint/), named after the template's path and the mode: NAME.MODE.cfn.json (the
# transform's output), NAME.MODE.deployed.json (what CloudFormation would create in that mode).
OUT_DIR="${LINT_OUT_DIR:-$ROOT/.local/lint}"
mkdir -p "$OUT_DIR"
abs="$(cd "$(dirname "$TEMPLATE")" && pwd)/$(basename "$TEMPLATE")"
slug="$(printf '%s' "$abs" | sed -e 's|^/||' -e 's|[^A-Za-z0-9._-]|_|g')"

status=0

echo "$me: [1/2] sam validate --lint $TEMPLATE"
if "$BIN/sam" validate --lint --template-file "$TEMPLATE" --region "$AWS_DEFAULT_REGION"; then
    echo "$me: [1/2] sam validate --lint: passed"
else
    echo "$me: [1/2] sam validate --lint: FAILED (see above)" >&2
    status=$((status | 1))
fi

for mode in AppToken Jwt; do
    # The identity modes, each with sample values for the parameters it requires.
    case "$mode" in
        AppToken) params=(
            IdentityMode=AppToken
            "AppJwtSecretArn=arn:aws:secretsmanager:$AWS_DEFAULT_REGION:123456789012:secret:mall/app-jwt-AbCdEf"
        ) ;;
        Jwt) params=(
            IdentityMode=Jwt
            "JwtIssuer=https://cognito-idp.$AWS_DEFAULT_REGION.amazonaws.com/${AWS_DEFAULT_REGION}_AbCdEf123"
            JwtAudience=mall-app-client
            CustomerIdClaim=sub
        ) ;;
    esac
    TRANSLATED="$OUT_DIR/${slug%.*}.$mode.cfn.json"
    DEPLOYED="$OUT_DIR/${slug%.*}.$mode.deployed.json"
    LINTRC="$OUT_DIR/${slug%.*}.$mode.cfnlintrc.json"
    echo "$me: [2/2] $mode: SAM transform + cfn-lint on the translated template ($TRANSLATED)"
    echo "$me: [2/2] $mode: with ${params[*]}"
    rm -f "$TRANSLATED" "$DEPLOYED" "$LINTRC" "$TRANSLATED.lint.json"
    args=()
    for p in "${params[@]}"; do args+=(--param "$p"); done
    if ! "$BIN/python" "$ROOT/infra/sam_translate.py" "${args[@]}" \
            --resolved "$DEPLOYED" --cfn-lint-config "$LINTRC" "$TEMPLATE" "$TRANSLATED"; then
        echo "$me: [2/2] $mode: the SAM transform or the parameter checks rejected $TEMPLATE: FAILED (see above)" >&2
        status=$((status | 2))
        continue
    fi
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational (1: it broke).
    rc=0
    "$BIN/cfn-lint" --config-file "$LINTRC" --format json -- "$TRANSLATED" >"$TRANSLATED.lint.json" || rc=$?
    # One line per finding, located by its path in the translated template: SAM names what
    # it generates after the SAM resource (RewardWorkerFunctionSchedule is the Schedule event
    # of RewardWorkerFunction).
    "$BIN/python" - "$TRANSLATED.lint.json" "$mode" <<'PY' || true
import json, sys
try:
    findings = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit(0)  # cfn-lint broke before writing JSON; its own message is above
for f in findings:
    path = "/".join(str(p) for p in f["Location"]["Path"]) or "(template)"
    line = f["Location"]["Start"]["LineNumber"]
    message = f["Message"] if len(f["Message"]) <= 300 else f["Message"][:300] + " ..."
    print(f'  {f["Rule"]["Id"]} {f["Level"].lower()} ({sys.argv[2]}) at {path} (line {line}): {message}')
PY
    if [ $((rc & 7)) -ne 0 ]; then
        echo "$me: [2/2] $mode: cfn-lint on the translated template: FAILED (exit $rc)" >&2
        status=$((status | 2))
    else
        echo "$me: [2/2] $mode: cfn-lint on the translated template: passed"
    fi
done

if [ "$status" -eq 0 ]; then
    echo "$me: $TEMPLATE passed both linters"
else
    echo "$me: $TEMPLATE REJECTED (exit $status)" >&2
fi
exit "$status"
