#!/usr/bin/env bash
# HTTP latency under load from a second process (wrk, 64 connections, 30 s per
# endpoint) against a release build, plus start-up time to ready and idle RSS.
# Usage: bench/http.sh [sqlite|postgres] [duration]
# Results are recorded by hand in docs/benchmarks.md with the machine and settings.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"; duration="${2:-30s}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p rwa --quiet

dir="$(mktemp -d)"
env_args=(RWA_LOG_FORMAT=json RUST_LOG=warn)
if [ "$backend" = postgres ]; then
  scripts/services.sh
  db="rwa_bench_$$"
  psql -h 127.0.0.1 -U postgres -qc "create database $db"
  env_args+=("RWA_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db")
fi

start_ns=$(date +%s%N)
env "${env_args[@]}" RUST_LOG=info ./target/release/rwa serve --addr 127.0.0.1:0 --data-dir "$dir" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; [ "$backend" = postgres ] && psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db with (force)"; rm -rf "$dir"' EXIT
addr=""
for _ in $(seq 1 200); do
  addr="$(grep -o '"addr":"[^"]*"' "$dir/log" | head -1 | cut -d'"' -f4 || true)"
  [ -n "$addr" ] && break; sleep 0.01
done
until curl -sf "http://$addr/health/ready" >/dev/null; do sleep 0.005; done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
key="$(env "${env_args[@]}" ./target/release/rwa org create --name Bench --data-dir "$dir" | sed -E 's/.*"api_key":"([^"]+)".*/\1/')"
sleep 2
idle_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

echo "backend=$backend ready_after_start_ms=$ready_ms idle_rss_kb=$idle_rss_kb"
echo "--- GET /health/ready"
wrk -t2 -c64 -d"$duration" --latency "http://$addr/health/ready"
echo "--- GET /v1/org (authenticated)"
wrk -t2 -c64 -d"$duration" --latency -H "Authorization: Bearer $key" "http://$addr/v1/org"
echo "rss_after_load_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
