#!/usr/bin/env bash
# Mints through the API on the embedded default (SQLite, devnet mining a
# block a second with a 30M block gas limit, 2 confirmations): a token
# deployed and N investors approved with a registered wallet each (not
# timed), then one mint to each investor, all requested at once over HTTP
# against a release build. Prints mints settled per second from the first
# request to the last settlement (server timestamps), p50/p99 from request
# to `settled`, the blocks and transactions it took, CPU time per mint, and
# RSS after.
# Usage: bench/operations.sh [mints] [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
mints="${1:-1000}"; backend="${2:-sqlite}"
cargo build --release -p rwa --quiet

. bench/serve.sh
start_server "$backend"
python3 bench/operations.py "http://$addr" "$key" "$mints" "$pid"
echo "rss_kb_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
