#!/usr/bin/env bash
# The cost of each credential: an authenticated GET /v1/org with an API key
# (digest lookup, cached in-process) and with a user's access token (JWT
# signature check, then the session, its user and the organization's mode
# read in one statement, then the organization), on the load shape of
# bench/http.sh (wrk, 2 threads, 64 connections, 5 s warm-up, then the
# measured run) with the server's CPU time per request. Also the login
# itself (argon2id verification), sequentially.
# Usage: bench/auth.sh [sqlite|postgres] [duration]
# Results are recorded by hand in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"; duration="${2:-30s}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p rwa --quiet

. bench/serve.sh
start_server "$backend" $'[auth]\naccess_ttl_secs = 3600'
email="bench.user@bench.example"; password="bench harbor lantern quietly counts owls"
curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\",\"role\":\"admin\"}" "http://$addr/v1/users" >/dev/null
login() {
  curl -sf -H 'Content-Type: application/json' -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
    "http://$addr/v1/auth/login"
}
start_ns=$(date +%s%N)
for _ in $(seq 1 20); do login >/dev/null; done
echo "login (argon2id verify + session): $(( ($(date +%s%N) - start_ns) / 20000000 )) ms each, sequential"
access="$(login | sed -E 's/.*"access_token":"([^"]+)".*/\1/')"

measure "GET /v1/org with an API key" -H "Authorization: Bearer $key" "http://$addr/v1/org"
measure "GET /v1/org with an access token" -H "Authorization: Bearer $access" "http://$addr/v1/org"
echo "rss_after_load_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
