#!/usr/bin/env bash
# HTTP latency under load from a second process (wrk, 2 threads, 64
# connections, 5 s warm-up, then 30 s per endpoint) against a release build,
# plus start-up time to ready, RSS, and the server's CPU time per request
# (process CPU seconds over requests served, from /proc). The write route is
# POST /v1/tokens (auth, validation, the token, its deployment job and its
# audit entry in one transaction); the deployment queue is not served
# (concurrency 0) so the run measures the API, not the chain.
# Usage: bench/http.sh [sqlite|postgres] [duration]
# Results are recorded by hand in docs/benchmarks.md with the machine and settings.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"; duration="${2:-30s}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p rwa --quiet

. bench/serve.sh
start_server "$backend" $'[jobs.queues.token-deployment]\nconcurrency = 0'
sleep 2
idle_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

echo "backend=$backend ready_after_start_ms=$ready_ms idle_rss_kb=$idle_rss_kb"
measure "GET /health/live" "http://$addr/health/live"
measure "GET /v1/org (authenticated)" -H "Authorization: Bearer $key" "http://$addr/v1/org"
measure "POST /v1/tokens (write path)" -s bench/http/tokens.lua -H "Authorization: Bearer $key" "http://$addr/v1/tokens"
echo "rss_after_load_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
