#!/usr/bin/env bash
# Transfers settled end to end on the embedded devnet (one block a second,
# 30M block gas limit, 2 confirmations): a token deployed, N investors
# approved with a registered wallet each and funded by mints (not timed),
# then T transfers between them requested at once over HTTP against a
# release build (bench/settlement.py). Prints transfers settled per second,
# p50/p99 request to settled, blocks and transactions, CPU per transfer and
# RSS after.
# Usage: bench/settlement.sh [investors] [transfers] [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
investors="${1:-200}"; transfers="${2:-2000}"; backend="${3:-sqlite}"
cargo build --release -p rwa --quiet

. bench/serve.sh
start_server "$backend"
python3 bench/settlement.py "http://$addr" "$key" "$investors" "$transfers" "$pid"
echo "rss_kb_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
