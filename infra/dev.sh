#!/usr/bin/env bash
# The local stack, no AWS account and no Docker: `make dev`.
#
# Installs what it needs (.venv with SecantusDB and cargo-lambda), starts the on-disk local
# database (kept across runs in .local/db), ensures the indexes and seeds demo data when the
# database is empty, runs the three functions under `cargo lambda watch`, drains the reward queue
# every few seconds as the cloud schedule would, and prints a ready-to-paste curl with a freshly
# minted local token. Ctrl-C stops everything it started.
#
# Env: MALL_DB_PORT (27017), MALL_INVOKE_PORT (9000), MALL_DRAIN_SECONDS (5),
#      MONGODB_DATABASE (mall), LOCAL_JWT_SECRET (a local development secret).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DB_PORT="${MALL_DB_PORT:-27017}"
INVOKE_PORT="${MALL_INVOKE_PORT:-9000}"
DRAIN_SECONDS="${MALL_DRAIN_SECONDS:-5}"
export MONGODB_URI="mongodb://127.0.0.1:${DB_PORT}/?directConnection=true"
export MONGODB_DATABASE="${MONGODB_DATABASE:-mall}"
export LOCAL_JWT_SECRET="${LOCAL_JWT_SECRET:-local-development-secret-not-for-production}"
# The economy the template deploys: the app's current one (the admin's rewardsettings).
CURRENT_ECONOMY='{"preset": "current"}'
export REWARD_POLICY="${REWARD_POLICY:-$CURRENT_ECONOMY}"
export PATH="$ROOT/.venv/bin:$PATH"
unset EVENT_BUS_NAME
BASE="http://127.0.0.1:${INVOKE_PORT}"
STATE="$ROOT/.local/dev"
mkdir -p "$STATE"

say() { printf '\033[1m%s\033[0m\n' "$*"; }

"$ROOT/infra/venv.sh"

# shellcheck source=infra/services.sh
source "$ROOT/infra/services.sh"
services_init dev "$STATE"

# The database outlives the stack when it was already running; one started here stops with it.
if ! MALL_DB_PORT="$DB_PORT" "$ROOT/infra/db.sh" status >/dev/null 2>&1; then
    MALL_DB_PORT="$DB_PORT" "$ROOT/infra/db.sh" start >/dev/null
    services_on_exit 'MALL_DB_PORT="$DB_PORT" "$ROOT/infra/db.sh" stop >/dev/null 2>&1'
fi

# One emulator per function, in the function's own crate (as the template's CodeUri and the
# tests): each binary built with its package's features alone. Ports: INVOKE_PORT for the
# checkout, +1 for the reward worker, +2 for retry-failed (`make invoke` knows them).
FUNCTIONS=(checkout reward-worker retry-failed)
watch_pids=()
drain_pid=""
stop_stack() {
    say "stopping the local stack"
    [ -n "$drain_pid" ] && kill "$drain_pid" 2>/dev/null || true
    for pid in "${watch_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${watch_pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
services_on_exit stop_stack

say "building the functions and the mall command (the first time takes a few minutes)"
cargo build --quiet --locked -p mall-cli
for fn in "${FUNCTIONS[@]}"; do
    (cd "functions/$fn" && cargo build --quiet --locked --bin "$fn")
done
MALL="$ROOT/target/debug/mall"
BUYER="$("$MALL" demo-seed)"

for i in "${!FUNCTIONS[@]}"; do
    fn="${FUNCTIONS[$i]}"
    say "starting cargo lambda watch for $fn on 127.0.0.1:$((INVOKE_PORT + i))"
    (cd "functions/$fn" && exec cargo-lambda lambda watch --invoke-address 127.0.0.1 \
        --invoke-port "$((INVOKE_PORT + i))" --ignore-changes) >"$STATE/watch-$fn.log" 2>&1 &
    watch_pids+=($!)
done
watch_pid="${watch_pids[0]}"
WORKER_BASE="http://127.0.0.1:$((INVOKE_PORT + 1))"

# Ready when the checkout function answers (an unauthenticated GET is its 401).
for _ in $(seq 1 600); do
    code="$(curl -s -o /dev/null -w '%{http_code}' \
        "${BASE}/lambda-url/checkout/api/cart/checkout/000000000000000000000000" || true)"
    [ "$code" = 401 ] && break
    kill -0 "$watch_pid" 2>/dev/null || { tail -40 "$STATE/watch-checkout.log"; exit 1; }
    sleep 1
done
[ "$code" = 401 ] || { echo "the checkout function did not come up; see $STATE/watch-checkout.log"; exit 1; }

# The schedule: drain every few seconds, as EventBridge would every minute in the cloud.
(
    while sleep "$DRAIN_SECONDS"; do
        curl -s -X POST "${WORKER_BASE}/2015-03-31/functions/reward-worker/invocations" \
            -d @"$ROOT/infra/events/worker-scheduled.json" >>"$STATE/drains.log" 2>&1 || true
        echo >>"$STATE/drains.log"
    done
) &
drain_pid=$!

TOKEN="$("$MALL" token --customer "$BUYER" --ttl-seconds 86400)"
cat <<MSG

$(say "The mall is running locally.")
  database   ${MONGODB_URI} (database ${MONGODB_DATABASE})
  functions  checkout ${BASE}, reward-worker ${WORKER_BASE}, retry-failed :$((INVOKE_PORT + 2))
             (logs: .local/dev/watch-*.log; drains: .local/dev/drains.log)
  buyer      ${BUYER} (demo customer amal: 5000 points, two boxes of dates in the cart)

Check out:

  curl -s -X POST ${BASE}/lambda-url/checkout/api/cart/checkout \\
    -H 'Authorization: Bearer ${TOKEN}' \\
    -H 'Idempotency-Key: demo-$(date +%s)' \\
    -d '{"deliveryAddress": "12 Souq Waqif, Doha"}'

Then, a few seconds later, the rewards (put the transactionId from the answer):

  curl -s ${BASE}/lambda-url/checkout/api/cart/checkout/TRANSACTION_ID \\
    -H 'Authorization: Bearer ${TOKEN}'

Refill the cart with: ${MALL} demo-seed   ·   queue: ${MALL} jobs status
Ctrl-C stops everything this started.
MSG
wait "${watch_pids[@]}"
