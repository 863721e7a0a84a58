#!/usr/bin/env bash
# Indexer backfill (docs/benchmarks.md): a local anvil given N ERC-20
# Transfer events over a few thousand blocks, indexed cold into a fresh
# SQLite or PostgreSQL database by the follower (release build); prints
# events/s, blocks/s, CPU and peak RSS of the indexing process, the node's
# own eth_getLogs rate over the same range, and the verify result.
# Usage: bench/indexer.sh [events, default 100000] [sqlite|postgres] [recipients per transaction, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-100000}"; backend="${2:-postgres}"; per_tx="${3:-50}"
scripts/install-node-deps.sh >/dev/null
[ "$backend" = postgres ] && scripts/services.sh >/dev/null
export RWA_TEST_DATABASE="$backend"
export RWA_TEST_POSTGRES_URL="${RWA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo run -q --release -p rwa-indexer --example backfill_bench -- "$events" "$per_tx"
