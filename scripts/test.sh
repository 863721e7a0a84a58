#!/usr/bin/env bash
# The one test command (README, and CI through .ci/run): quality gates, then
# every test on SQLite and again on PostgreSQL. Test binaries are built once and
# reused for both runs. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RWA_TEST_POSTGRES_URL="${RWA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

step() { printf '\n==> %s\n' "$*"; }

step "services (PostgreSQL, Redis, RabbitMQ)"
scripts/services.sh
if [ -x scripts/install-node-deps.sh ] && [ -f package.json ]; then
  step "node packages (anvil, solc)"
  scripts/install-node-deps.sh
fi

step "contracts: artifacts up to date, sizes under 24 KiB"
contracts/build --check

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tools (cargo-deny, schemathesis; pinned)"
tools="$(scripts/install-tools.sh)"

step "cargo deny check bans licenses sources"
"$tools/cargo-deny" --log-level error check bans licenses sources

step "build test binaries (once, for both backends)"
cargo test --workspace --locked --no-run

# Throw-away databases of earlier runs (a run that was killed leaves them behind).
psql "$RWA_TEST_POSTGRES_URL" -tAc "select datname from pg_database where datname like 'rwa_test_%'" \
  | while read -r db; do [ -n "$db" ] && psql "$RWA_TEST_POSTGRES_URL" -qc "drop database if exists \"$db\" with (force)"; done

passed=0; failed=0; status=0
run_suite() {
  local backend="$1" log
  shift
  log="$(mktemp)"
  step "tests on $backend ($*)"
  if ! RWA_TEST_DATABASE="$backend" cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$log"; then status=1; fi
  local p f
  p=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
  f=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
  echo "$backend: $p passed, $f failed"
  passed=$((passed + p)); failed=$((failed + f))
  rm -f "$log"
}
# Everything on SQLite (the embedded default); then again on PostgreSQL every
# package whose tests touch the database. The chain and contract suites do not
# depend on the database backend, so running them twice would only cost time.
DATABASE_PACKAGES=(-p rwa-store -p rwa-jobs -p rwa-indexer -p rwa)
run_suite sqlite --workspace
run_suite postgres "${DATABASE_PACKAGES[@]}"

# The API contract: the served /openapi.json against the server itself, once
# (it does not depend on the database backend).
step "API contract fuzzing (schemathesis against the served /openapi.json)"
if ! scripts/fuzz-api.sh "${CARGO_TARGET_DIR:-target}/debug/rwa"; then
  echo "the API does not do what /openapi.json says (see the failures above)"
  status=1; failed=$((failed + 1))
fi

echo
echo "${passed} passed, ${failed} failed"
if [ "$failed" -ne 0 ]; then status=1; fi
exit "$status"
