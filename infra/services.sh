# infra/services.sh — sourced, not run: the one place the scripts start, wait for and stop local
# servers (SecantusDB through infra/localdb.py, a local EventBridge through infra/localaws.py)
# and run a command so that Ctrl-C or a TERM always stops what they started.
#
#   source "$ROOT/infra/services.sh"
#   services_init NAME STATE_DIR      # NAME prefixes messages; pidfiles and logs go in STATE_DIR
#   services_start db  VAR --port auto --storage :memory:   # exports VAR=the URI
#   services_start aws VAR --port auto                      # exports VAR=the endpoint
#   services_on_exit 'shell command'  # also run at exit (newest first), before the servers stop
#   services_run CMD [ARGS...]        # runs CMD in the background, waits, returns its status
#
# `services_start` returns once the server answers (localservice.py waits for it) and exits the
# script with the tail of the server's log when it cannot start. At exit every server started
# here is stopped, newest first; its log is removed when the script succeeded and kept (and
# named) when it failed. `services_keep_logs` keeps them in any case. For a persistent server
# that outlives the script (`make dev`'s database), `services_localdb start|stop|status ...`
# calls infra/localdb.py directly.

SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_NAME="services"
SERVICES_STATE=""
SERVICES_STARTED=()
SERVICES_ON_EXIT=()
SERVICES_KEEP_LOGS=0
SERVICES_CHILD=""

services_localdb() { python3 "$SERVICES_ROOT/infra/localdb.py" "$@"; }
services_localaws() { python3 "$SERVICES_ROOT/infra/localaws.py" "$@"; }

services_init() {
    SERVICES_NAME="$1"
    SERVICES_STATE="$2"
    mkdir -p "$SERVICES_STATE"
    # Drop server logs of failed runs older than a day.
    find "$SERVICES_STATE" -maxdepth 1 -name 'run-*.log' -mtime +0 -delete 2>/dev/null || true
    trap services_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

services_keep_logs() { SERVICES_KEEP_LOGS=1; }

# services_bench_harness NAME: builds mall-testkit's `harness = false` bench NAME and prints its
# executable (run directly, not through `cargo bench`, which would put CARGO_MANIFEST_DIR & co.
# into its environment and keep a TERM from reaching it).
services_bench_harness() {
    "${CARGO:-cargo}" bench --locked -p mall-testkit --bench "$1" --no-run \
            --message-format=json-render-diagnostics \
        | python3 -c 'import json, sys
found = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m.get("executable")
         and m["target"]["name"] == sys.argv[1]]
print(found[-1] if found else "")' "$1"
}

services_on_exit() { SERVICES_ON_EXIT+=("$1"); }

services_start() {
    local kind="$1" var="$2" script address
    shift 2
    case "$kind" in
        db) script=localdb.py ;;
        aws) script=localaws.py ;;
        *) echo "$SERVICES_NAME: unknown service $kind" >&2; exit 2 ;;
    esac
    local pidfile="$SERVICES_STATE/run-$$-$kind.pid" log="$SERVICES_STATE/run-$$-$kind.log"
    SERVICES_STARTED+=("$script $pidfile $log")
    if ! address="$(python3 "$SERVICES_ROOT/infra/$script" start "$@" \
            --pidfile "$pidfile" --logfile "$log")"; then
        SERVICES_KEEP_LOGS=1
        echo "$SERVICES_NAME: ERROR: could not start the local $kind server (see messages above)" >&2
        exit 1
    fi
    export "$var=$address"
}

services_run() {
    # In the background (stdin kept) and waited for, so INT/TERM reach the trap at once; the
    # cleanup forwards a TERM to the command.
    "$@" <&0 &
    SERVICES_CHILD=$!
    local rc=0
    wait "$SERVICES_CHILD" || rc=$?
    SERVICES_CHILD=""
    return "$rc"
}

services_cleanup() {
    local rc=$? i entry script pidfile log
    trap - EXIT INT TERM HUP
    if [ -n "$SERVICES_CHILD" ] && kill -0 "$SERVICES_CHILD" 2>/dev/null; then
        kill -TERM "$SERVICES_CHILD" 2>/dev/null || true
        wait "$SERVICES_CHILD" 2>/dev/null || true
    fi
    for ((i = ${#SERVICES_ON_EXIT[@]} - 1; i >= 0; i--)); do
        eval "${SERVICES_ON_EXIT[$i]}" || true
    done
    for ((i = ${#SERVICES_STARTED[@]} - 1; i >= 0; i--)); do
        read -r script pidfile log <<<"${SERVICES_STARTED[$i]}"
        python3 "$SERVICES_ROOT/infra/$script" stop --pidfile "$pidfile" >/dev/null 2>&1 || true
        if [ "$rc" -eq 0 ] && [ "$SERVICES_KEEP_LOGS" -eq 0 ]; then
            rm -f "$log"
        elif [ -f "$log" ]; then
            echo "$SERVICES_NAME: server log kept at $log" >&2
        fi
    done
    exit "$rc"
}
