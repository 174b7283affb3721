#!/usr/bin/env bash
# Run a command against throw-away local services: an in-memory SecantusDB
# server (MongoDB wire protocol) and a moto server (EventBridge, SQS, ...).
#
#   infra/with-test-services.sh cargo test -p mall-store
#
# Ensures the venv, starts `secantusd-py --storage-path :memory:` and
# `moto_server` on free ports, exports
#   MALL_TEST_MONGODB_URI           mongodb://127.0.0.1:PORT/?directConnection=true
#   MALL_TEST_EVENTBRIDGE_ENDPOINT  http://127.0.0.1:PORT
# puts .venv/bin first on the command's PATH (so it can run `cargo lambda`),
# runs the command, and always stops both servers afterwards.  Exits with the
# command's exit code.  Each run gets its own pidfiles/logs under
# .local/test-services/, so parallel runs don't collide; the logs are kept
# only when something failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.local/test-services"
DB_PIDFILE="$STATE/run-$$-db.pid"
DB_LOG="$STATE/run-$$-db.log"
AWS_PIDFILE="$STATE/run-$$-moto.pid"
AWS_LOG="$STATE/run-$$-moto.log"
me="with-test-services"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

"$ROOT/infra/venv.sh" >&2   # keep stdout for CMD
mkdir -p "$STATE"
# Drop server logs of failed runs older than a day.
find "$STATE" -maxdepth 1 -name 'run-*.log' -mtime +0 -delete 2>/dev/null || true

child=""
keep_logs=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    python3 "$ROOT/infra/localaws.py" stop --pidfile "$AWS_PIDFILE" 2>/dev/null || true
    python3 "$ROOT/infra/localdb.py" stop --pidfile "$DB_PIDFILE" 2>/dev/null || true
    local log
    for log in "$DB_LOG" "$AWS_LOG"; do
        if [ "$rc" -eq 0 ] && [ "$keep_logs" -eq 0 ]; then
            rm -f "$log"
        elif [ -f "$log" ]; then
            echo "$me: server log kept at $log" >&2
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if ! URI="$(python3 "$ROOT/infra/localdb.py" start --port auto --storage :memory: \
        --pidfile "$DB_PIDFILE" --logfile "$DB_LOG")"; then
    keep_logs=1
    echo "$me: ERROR: could not start the test SecantusDB server (see messages above)" >&2
    exit 1
fi
export MALL_TEST_MONGODB_URI="$URI"

if ! ENDPOINT="$(python3 "$ROOT/infra/localaws.py" start --port auto \
        --pidfile "$AWS_PIDFILE" --logfile "$AWS_LOG")"; then
    keep_logs=1
    echo "$me: ERROR: could not start the test moto server (see messages above)" >&2
    exit 1
fi
export MALL_TEST_EVENTBRIDGE_ENDPOINT="$ENDPOINT"

# Run in the background (stdin kept) and wait, so INT/TERM reach the trap
# immediately; the cleanup handler forwards SIGTERM to the command.
PATH="$ROOT/.venv/bin:$PATH" "$@" <&0 &
child=$!
rc=0
wait "$child" || rc=$?
child=""
exit "$rc"
