# Developer entry points. `make test` is what CI runs (.ci/run); it needs only cargo and python3
# and installs the rest (a project virtualenv with the local MongoDB wire server) by itself.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
SCENARIO ?= infra/scenarios/spec-section-9.json


.PHONY: help dev demo invoke soak fuzz venv test bench crowd bench-checkout bench-token bench-worker drain fmt fmt-check lint check-deployed lint-budget lint-template lint-openapi clippy unit simulate db db-stop db-status build build-native deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: ## Create .venv (SecantusDB, moto, cargo-lambda from infra/requirements.txt), if missing or outdated
	@infra/venv.sh

dev: ## Run the product locally: database, demo data, the functions under cargo lambda watch, a drain every 5 s
	@infra/dev.sh

demo: ## One scripted checkout end to end on the make dev stack (started if not running): wallet changes and distribution
	@cargo build --quiet --locked -p mall-cli
	@python3 infra/demo.py

invoke: ## Send a sample event to a function under make dev: make invoke FN=retry-failed EVENT=infra/events/retry-failed-status.json
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=checkout|reward-worker|retry-failed EVENT=infra/events/FILE.json"; exit 2; }
	@port=$${MALL_INVOKE_PORT:-9000}; case "$(FN)" in reward-worker) port=$$((port + 1));; retry-failed) port=$$((port + 2));; esac; \
		PATH="$(CURDIR)/.venv/bin:$$PATH" cargo-lambda lambda invoke $(FN) --data-file $(EVENT) \
		--invoke-address 127.0.0.1 --invoke-port $$port

test: lint ## Format check, template lint, clippy, then unit, property, integration and end-to-end tests on fresh test services
	infra/with-test-services.sh $(CARGO) test --workspace --locked

lint: fmt-check lint-budget lint-template lint-openapi clippy check-deployed ## cargo fmt --check, the template and OpenAPI lints, clippy -D warnings, the deployed builds

fmt-check: ## cargo fmt --check, then rustfmt on every source file (one cargo fmt cannot reach fails too)
	$(CARGO) fmt --all -- --check
	find shared functions tests -name '*.rs' -print0 | xargs -0 rustfmt --edition 2021 --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

check-deployed: ## Build each function as `sam build` does; fail if test-only or operators' code reaches it (proven on a broken copy)
	@infra/venv.sh
	.venv/bin/python infra/check-deployed-builds.py --json .local/deployed-builds.json
	.venv/bin/python infra/test-check-deployed-builds.py

lint-budget: ## The template's and the README's connection-budget tables agree with infra/connection-budget.py
	@infra/venv.sh
	.venv/bin/python infra/connection-budget.py --check

lint-template: ## Lint template.yaml (sam validate --lint + cfn-lint on its SAM translation); prove it on broken copies
	infra/lint-template.sh template.yaml
	python3 infra/test-lint.py template.yaml

lint-openapi: ## Validate functions/checkout/openapi.yaml (OpenAPI 3.1, local refs, examples match their schemas)
	@infra/venv.sh
	.venv/bin/python infra/lint-openapi.py functions/checkout/openapi.yaml

fmt: ## Format the code
	$(CARGO) fmt --all
	find shared functions tests -name '*.rs' -print0 | xargs -0 rustfmt --edition 2021

unit: ## Only the tests that need no database (pure rules, property tests, parsing, the CLI's simulator)
	$(CARGO) test --workspace --lib --bins --locked
	$(CARGO) test -p mall-domain --locked
	$(CARGO) test -p mall-cli --locked --test mall_command -- simulate input file token

soak: ## Crash soak: 1,000 checkouts, 3 workers SIGKILLed at random for a minute, then audit and exact wallets
	MALL_SOAK_CHECKOUTS=1000 MALL_SOAK_KILL_SECONDS=60 infra/with-test-services.sh \
		$(CARGO) test -p mall-cli --locked --test crash_soak -- --nocapture

fuzz: ## HTTP fuzzing of the checkout binary under cargo lambda watch (MALL_FUZZ_CASES, default 10,000)
	infra/with-test-services.sh $(CARGO) test -p mall-testkit --locked --test fuzz_checkout_under_emulator -- --nocapture

bench: ## System benchmark: release binaries under cargo lambda watch on 10,000 customers; a table, then one JSON line
	@CARGO="$(CARGO)" infra/bench.sh

crowd: ## Hundreds of buyers at once on the release checkout within the connection budget: no 5xx, wallets exact, connections counted
	@CARGO="$(CARGO)" infra/crowd.sh

bench-checkout: ## Checkout latency (p50/p95/p99) over 200 sequential checkouts on a local server
	infra/with-test-services.sh $(CARGO) bench -p checkout --bench checkout_latency

bench-token: ## What verifying the app's own token costs a checkout (µs per request, no I/O)
	$(CARGO) bench -p checkout --bench token_check

bench-worker: ## Worker throughput: one worker draining 1,000 jobs, at concurrency 1 and 4
	infra/with-test-services.sh $(CARGO) bench -p reward-worker --bench drain_throughput

drain: ## Drain the reward queue of the local database once (MONGODB_URI, default the make db server)
	@MONGODB_URI=$${MONGODB_URI:-mongodb://127.0.0.1:$${MALL_DB_PORT:-27017}/?directConnection=true} \
		$(CARGO) run --quiet -p mall-cli -- drain

simulate: ## Run the reward simulator on SCENARIO (default: the SPEC section 9 example)
	@$(CARGO) run --quiet -p mall-cli -- simulate $(SCENARIO)

db: ## Start the persistent local database (port MALL_DB_PORT, default 27017; data in .local/db)
	@infra/db.sh start

db-stop: ## Stop the local database
	@infra/db.sh stop

db-status: ## Is the local database running?
	@infra/db.sh status

build: ## sam build: the three functions for arm64 with cargo-lambda, into .aws-sam/build
	@infra/venv.sh
	PATH="$(CURDIR)/.venv/bin:$$PATH" SAM_CLI_TELEMETRY=0 sam build --template-file template.yaml

build-native: ## Build every crate for this machine (cargo build)
	$(CARGO) build --workspace --locked

deploy: build ## sam deploy --guided (needs AWS credentials; README "Deploying")
	PATH="$(CURDIR)/.venv/bin:$$PATH" sam deploy --guided

clean: db-stop ## Stop the local database and remove build output
	rm -rf .aws-sam
	$(CARGO) clean
