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

dir="$(mktemp -d)"
env_args=(RWA_LOG_FORMAT=json RUST_LOG=info)
if [ "$backend" = postgres ]; then
  scripts/services.sh
  db="rwa_bench_$$"
  psql -h 127.0.0.1 -U postgres -qc "create database $db"
  env_args+=("RWA_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db")
fi
env "${env_args[@]}" ./target/release/rwa serve --addr 127.0.0.1:0 --data-dir "$dir" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; [ "$backend" = postgres ] && psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db with (force)"; rm -rf "$dir"' EXIT
addr=""
for _ in $(seq 1 500); do
  addr="$(grep -o '"addr":"[^"]*"' "$dir/log" | head -1 | cut -d'"' -f4 || true)"
  [ -n "$addr" ] && break; sleep 0.01
done
until curl -sf "http://$addr/health/ready" >/dev/null; do sleep 0.01; done
key="$(env "${env_args[@]}" ./target/release/rwa org create --name Bench --data-dir "$dir" | sed -E 's/.*"api_key":"([^"]+)".*/\1/')"
python3 bench/deployments.py "http://$addr" "$key" "$tokens"
echo "rss_kb_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
