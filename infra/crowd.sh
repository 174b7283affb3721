#!/usr/bin/env bash
# `make crowd`: hundreds of buyers at once on the real checkout binary, within the connection
# budget (issue 28; tests/benches/crowd.rs says what is checked), from a bare machine.
#
#   infra/crowd.sh
#
# Env: MALL_CROWD_BUYERS (300), MALL_CROWD_BUDGET (100, one the template offers),
#      MALL_CROWD_ORIGINAL (optional: a command `CMD PORT MONGODB_URI JWT_SECRET` that starts the
#      original Node.js app, for the same crowd against its checkout on the same server).
# Ensures the venv, builds the checkout (release, in its own crate as the emulator does) and the
# harness, starts a throw-away in-memory SecantusDB, derives the limits from the template
# (infra/connection-budget.py) and runs the harness. A table, then one JSON line; exits non-zero
# when a promise is broken.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/services.sh
source "$ROOT/infra/services.sh"
STATE="$ROOT/.local/crowd"
CARGO="${CARGO:-cargo}"
me="crowd"

"$ROOT/infra/venv.sh" >&2
mkdir -p "$STATE"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"

# The template's limits for this budget with its default two workers.
eval "export $(.venv/bin/python infra/connection-budget.py --figures "${MALL_CROWD_BUDGET:-100}" 2)"

echo "$me: building the checkout (release) and the harness" >&2
(cd functions/checkout && "$CARGO" build --release --locked --bin checkout >&2)
HARNESS="$(services_bench_harness crowd)"
[ -x "$HARNESS" ] || { echo "$me: ERROR: cargo bench --no-run named no harness executable" >&2; exit 1; }

services_init crowd "$STATE"
services_start db MALL_CROWD_MONGODB_URI --port auto --storage :memory:
rc=0
services_run "$HARNESS" || rc=$?
[ "$rc" -eq 0 ] || services_keep_logs
exit "$rc"
