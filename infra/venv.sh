#!/usr/bin/env bash
# Create/refresh the project virtualenv at <repo>/.venv from infra/requirements.txt.
#
# - Creates .venv with `python3 -m venv` when missing (or broken).
# - Runs pip only when requirements.txt changed since the last successful
#   install (sha256 stamp kept in .venv/.requirements.sha256).
# - Silent on the no-op path; on install only pip's own output is shown.
#
# Env: PYTHON  interpreter used to create the venv (default: python3, needs >= 3.10)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/infra/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PY="${PYTHON:-python3}"

die() { echo "venv.sh: $*" >&2; exit 1; }

[ -f "$REQ" ] || die "missing $REQ"

hash_req() {
    "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$REQ"
}

up_to_date() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' 2>/dev/null \
        && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(hash_req)" ]
}

command -v "$PY" >/dev/null 2>&1 || die "'$PY' not found; install Python >= 3.10"

# Fast path: nothing to do, print nothing.
if up_to_date; then
    exit 0
fi

# Serialize concurrent runs (e.g. parallel with-test-services.sh) when flock exists.
mkdir -p "$ROOT/.local"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/.local/venv.lock"
    flock 9
    if up_to_date; then exit 0; fi   # another run finished the job meanwhile
fi

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$("$PY" -V 2>&1) is too old; SecantusDB needs Python >= 3.10 (set PYTHON=...)"

if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' 2>/dev/null; }; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" \
        || die "'$PY -m venv' failed (on Debian/Ubuntu the venv/ensurepip module may be missing)"
fi

"$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQ" \
    || die "pip install -r $REQ failed"

hash_req > "$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
