#!/usr/bin/env bash
# Developer database: a persistent on-disk SecantusDB server.
#
#   infra/db.sh start|stop|status|restart
#
# Port ${MALL_DB_PORT:-27017}; data in .local/db/data, pidfile .local/db/db.pid,
# log .local/db/db.log.  `start` prints the connection URI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/services.sh
source "$ROOT/infra/services.sh"
STATE="$ROOT/.local/db"
PIDFILE="$STATE/db.pid"
PORT="${MALL_DB_PORT:-27017}"

start() {
    "$ROOT/infra/venv.sh" >&2   # stdout is reserved for the URI
    mkdir -p "$STATE/data"
    services_localdb start --port "$PORT" --storage "$STATE/data" \
        --pidfile "$PIDFILE" --logfile "$STATE/db.log"
}

case "${1:-}" in
    start)   start ;;
    stop)    services_localdb stop --pidfile "$PIDFILE" ;;
    status)  services_localdb status --pidfile "$PIDFILE" ;;
    restart) services_localdb stop --pidfile "$PIDFILE"; start ;;
    *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
