#!/usr/bin/env bash
# `make bench`: the system benchmark (issue 7), from a bare machine (Rust toolchain + python3).
#
#   infra/bench.sh
#
# Ensures the venv (SecantusDB, cargo-lambda and the Zig it links arm64 with), builds the three
# functions for this machine with the release profile (what `cargo lambda watch --release` runs)
# and for arm64 exactly as `sam build` does (`cargo lambda build --release --arm64 --bin NAME` in
# the function's CodeUri, through infra/check-deployed-builds.py, which also checks what they hold),
# starts a throw-away in-memory SecantusDB on a free port (unless MALL_BENCH_MONGODB_URI names
# another server to measure against), and runs the harness
# (tests/benches/system.rs, its executable from `cargo bench --no-run`) against it. The harness
# prints a table and, as the last line of stdout, one JSON object; builds and progress go to
# stderr. The database is always stopped afterwards (infra/services.sh). Exits non-zero only when something failed,
# not when a figure misses its target.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/services.sh
source "$ROOT/infra/services.sh"
STATE="$ROOT/.local/bench"
CARGO="${CARGO:-cargo}"
FUNCTIONS=(checkout reward-worker retry-failed)
me="bench"

started=$SECONDS
"$ROOT/infra/venv.sh" >&2
mkdir -p "$STATE"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"

echo "$me: building the functions (release, this machine) and the harness" >&2
# Each in its own crate directory, as the emulator builds it (tests/src/emulator.rs).
for fn in "${FUNCTIONS[@]}"; do
    (cd "functions/$fn" && "$CARGO" build --release --locked --bin "$fn" >&2)
done
HARNESS="$(services_bench_harness system)"
if [ ! -x "$HARNESS" ]; then
    echo "$me: ERROR: cargo bench --no-run named no harness executable" >&2
    exit 1
fi

echo "$me: building the functions for arm64 as sam build does, checked (infra/check-deployed-builds.py)" >&2
.venv/bin/python infra/check-deployed-builds.py --json "$STATE/deployed-builds.json" >&2
echo "$me: builds done after $((SECONDS - started)) s" >&2

services_init bench "$STATE"
if [ -n "${MALL_BENCH_MONGODB_URI:-}" ]; then
    # Another server (a real mongod replica set, say): the harness works in a database of its
    # own there, named bench_<id>, and leaves it behind for inspection.
    echo "$me: using the server at MALL_BENCH_MONGODB_URI (no local server started)" >&2
else
    services_start db MALL_BENCH_MONGODB_URI --port auto --storage :memory:
    export MALL_BENCH_SERVER="local SecantusDB $(.venv/bin/python -c \
        'import importlib.metadata as m; print(m.version("SecantusDB"))'), in memory"
fi
export MALL_BENCH_LAMBDA_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/lambda"

# The harness stops its emulators and their function instances on TERM.
rc=0
services_run "$HARNESS" || rc=$?
[ "$rc" -eq 0 ] || services_keep_logs
echo "$me: done in $((SECONDS - started)) s (exit $rc)" >&2
exit "$rc"
