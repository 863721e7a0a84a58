#!/usr/bin/env bash
# Investors' wallets registered on-chain, end to end on the embedded default
# (SQLite, devnet mining a block a second with a 30M block gas limit, 2
# confirmations): N investors onboarded with a wallet each (not timed), then
# all approved at once over HTTP against a release build. Prints wallets
# registered per second from the first approval to the last registration
# settled (server timestamps), the blocks and transactions it took, and RSS.
# Usage: bench/identity.sh [investors] [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
investors="${1:-1000}"; backend="${2:-sqlite}"
cargo build --release -p rwa --quiet

. bench/serve.sh
start_server "$backend"
python3 bench/identity.py "http://$addr" "$key" "$investors" "$pid"
echo "rss_kb_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
