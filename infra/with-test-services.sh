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
# runs the command, and always stops both servers afterwards (infra/services.sh).
# Exits with the command's exit code.  Each run gets its own pidfiles/logs under
# .local/test-services/, so parallel runs don't collide; the logs are kept
# only when something failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/services.sh
source "$ROOT/infra/services.sh"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

"$ROOT/infra/venv.sh" >&2   # keep stdout for CMD
services_init with-test-services "$ROOT/.local/test-services"
services_start db MALL_TEST_MONGODB_URI --port auto --storage :memory:
services_start aws MALL_TEST_EVENTBRIDGE_ENDPOINT --port auto

rc=0
PATH="$ROOT/.venv/bin:$PATH" services_run "$@" || rc=$?
exit "$rc"
