#!/usr/bin/env bash
# What abuse protection costs on the hot path: an authenticated GET /v1/org
# with an API key, on the load shape of bench/http.sh (wrk, 2 threads, 64
# connections, 5 s warm-up, then the measured run) with the server's CPU time
# per request, four ways: rate limits off; on and kept in-process (governor);
# on and shared through Redis (one GCRA script per bucket, two buckets per
# request: the address's and the key's); and the in-process limits over TLS
# (rwa serve terminating it, keep-alive connections). The limits are set high
# enough that every request passes: what is measured is the checking, not 429s.
# Usage: bench/limits.sh [sqlite|postgres] [duration]
# Results are recorded by hand in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"; duration="${2:-30s}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
scripts/services.sh >/dev/null
cargo build --release -p rwa --quiet

. bench/serve.sh
roomy=$'[rate_limits.tiers.standard]\nper_minute = 1000000\nburst = 1000000'
on=(RWA_RATE_LIMITS=on RWA_RATE_LIMIT_ADDRESS_PER_MINUTE=1000000 RWA_RATE_LIMIT_ADDRESS_BURST=1000000)

run() {
  local name="$1"
  ( start_server "$backend" "$roomy"
    measure "$name" -H "Authorization: Bearer $key" "${scheme:-http}://$addr/v1/org"
    echo "rss_after_load_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)" )
}

bench_env=(); run "rate limits off"
bench_env=("${on[@]}"); run "rate limits in-process"
redis-cli -h 127.0.0.1 flushdb >/dev/null
bench_env=("${on[@]}" RWA_REDIS_URL=redis://127.0.0.1:6379); run "rate limits through Redis"

tls="$(mktemp -d)"; trap 'rm -rf "$tls"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null
bench_env=("${on[@]}" RWA_TLS_CERT="$tls/cert.pem" RWA_TLS_KEY="$tls/key.pem"); scheme=https
run "rate limits in-process, over TLS"
