#!/usr/bin/env bash
# Run a command against a throw-away in-memory SecantusDB server.
#
#   infra/with-test-db.sh cargo test -p mall-store
#
# Ensures the venv, starts `secantusd-py --storage-path :memory:` on a free
# port, exports MALL_TEST_MONGODB_URI, runs the command, and always stops the
# server afterwards.  Exits with the command's exit code.  Each run gets its
# own pidfile/log under .local/test-db/, so parallel runs don't collide; the
# log is kept only when something failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.local/test-db"
PIDFILE="$STATE/run-$$.pid"
LOGFILE="$STATE/run-$$.log"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

"$ROOT/infra/venv.sh" >&2   # keep stdout for CMD / the URI
mkdir -p "$STATE"
# Drop server logs of failed runs older than a day.
find "$STATE" -maxdepth 1 -name 'run-*.log' -mtime +0 -delete 2>/dev/null || true

child=""
keep_log=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    python3 "$ROOT/infra/localdb.py" stop --pidfile "$PIDFILE" 2>/dev/null || true
    if [ "$rc" -eq 0 ] && [ "$keep_log" -eq 0 ]; then
        rm -f "$LOGFILE"
    elif [ -f "$LOGFILE" ]; then
        echo "with-test-db: server log kept at $LOGFILE" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if ! URI="$(python3 "$ROOT/infra/localdb.py" start --port auto --storage :memory: \
        --pidfile "$PIDFILE" --logfile "$LOGFILE")"; then
    keep_log=1
    echo "with-test-db: ERROR: could not start the test SecantusDB server (see messages above)" >&2
    exit 1
fi
export MALL_TEST_MONGODB_URI="$URI"

# Run in the background (stdin kept) and wait, so INT/TERM reach the trap
# immediately; the cleanup handler forwards SIGTERM to the command.
"$@" <&0 &
child=$!
rc=0
wait "$child" || rc=$?
child=""
exit "$rc"
