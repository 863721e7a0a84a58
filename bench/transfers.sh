#!/usr/bin/env bash
# POST /v1/transfers accepted per second: the release build of `rwa serve`
# on the chosen backend with the compliance-check queue not served (every
# accepted transfer stays `pending_compliance`, so the figure is the write
# path alone: auth, validation, idempotency key, party resolution, the row,
# its job, its audit entry and event, committed before the 202), a token
# deployed and two investors with a wallet each (not timed); then wrk, in a
# second process, 2 threads and 64 connections, 5 s warm-up and 30 s
# measured (bench/http/transfers.lua). Prints req/s, p50/p99, non-2xx
# answers, the server's CPU time per request and its RSS after.
# Usage: bench/transfers.sh [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -q
. bench/serve.sh
start_server "$backend" $'[jobs.queues.compliance-check]\nconcurrency = 0'
base="http://$addr"
post() { curl -sf -X POST "$base$1" -H "Authorization: Bearer $key" -H 'content-type: application/json' -d "$2"; }
id() { sed -E 's/.*"id":"([^"]+)".*/\1/'; }
TOKEN_ID=$(post /v1/tokens '{"name":"Bench Transfers","symbol":"BTR","decimals":0}' | id)
investor() {
  local i
  i=$(post /v1/investors "{\"name\":\"Bench $1\",\"email\":\"bench$1@example.com\",\"country\":\"FR\",\"type\":\"entity\",\"accredited\":true}" | id)
  post "/v1/investors/$i/wallets" "{\"address\":\"0x$(printf '%040x' "$1")\"}" >/dev/null
  echo "$i"
}
FROM=$(investor 1); TO=$(investor 2)
until curl -sf "$base/v1/tokens/$TOKEN_ID" -H "Authorization: Bearer $key" | grep -q '"status":"deployed"'; do sleep 0.2; done
export TOKEN_ID FROM TO
lua="$PWD/bench/http/transfers.lua"
args=(-t2 -c64 -H "Authorization: Bearer $key" -s "$lua")
wrk "${args[@]}" -d5s "$base/v1/transfers" >/dev/null
ticks=$(getconf CLK_TCK)
b=$(awk '{print $14+$15}' "/proc/$pid/stat")
out=$(wrk "${args[@]}" -d30s --latency "$base/v1/transfers")
a=$(awk '{print $14+$15}' "/proc/$pid/stat")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
n=$(awk '/requests in/ {print $1}' <<<"$out")
echo "$out" | grep -E "Requests/sec|requests in|50%|99%|Non-2xx|errors:"
awk -v t=$((a-b)) -v hz="$ticks" -v n="$n" -v rss="$rss" -v be="$backend" \
  'BEGIN {printf "%s: %.0f us server cpu/request, RSS %.0f MiB after\n", be, (t/hz)/n*1e6, rss/1024}'
