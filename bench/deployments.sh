#!/usr/bin/env bash
# Token deployments end to end on the embedded default (SQLite, devnet mining a
# block a second, 2 confirmations): N tokens issued at once over HTTP against a
# release build, timed from the first POST until every token reads `deployed`.
# Prints deployments per minute and each token's time to deployed (p50, p99).
# Usage: bench/deployments.sh [tokens] [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
tokens="${1:-100}"; backend="${2:-sqlite}"
cargo build --release -p rwa --quiet

. bench/serve.sh
start_server "$backend"
python3 bench/deployments.py "http://$addr" "$key" "$tokens"
echo "rss_kb_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
