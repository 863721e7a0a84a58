#!/usr/bin/env bash
# A/B of two rwa binaries in one run (the machines vary 3-4x between days, so
# only figures from one run compare): each serves SQLite in turn, twice,
# under wrk (2 threads, 64 connections, 3 s warm-up, 15 s measured) on
# GET /health/live and an authenticated GET /v1/org; prints req/s and the
# server's CPU time per request.
# Usage: bench/http-ab.sh OLD_BINARY NEW_BINARY
set -euo pipefail
old="$1"; new="$2"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
ticks=$(getconf CLK_TCK)
for round in 1 2; do
for bin in "$old" "$new"; do
  dir=$(mktemp -d)
  RUST_LOG=warn,rwa=info $bin serve --addr 127.0.0.1:0 --data-dir $dir 2>$dir/log & pid=$!
  for _ in $(seq 1 100); do addr=$(sed -nE 's/.*listening addr=([0-9.:]+).*/\1/p' $dir/log | head -1); [ -n "$addr" ] && break; sleep 0.1; done
  key=$($bin org create --name AB --data-dir $dir | sed -E 's/.*"api_key":"([^"]+)".*/\1/')
  for path in /health/live /v1/org; do
    wrk -t2 -c64 -d3s -H "Authorization: Bearer $key" http://$addr$path >/dev/null
    b=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(wrk -t2 -c64 -d15s -H "Authorization: Bearer $key" http://$addr$path)
    a=$(awk '{print $14+$15}' /proc/$pid/stat)
    n=$(awk '/requests in/ {print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    awk -v b=$bin -v p=$path -v t=$((a-b)) -v hz=$ticks -v n=$n -v r=$rps 'BEGIN {printf "round %s %s %s: %s req/s, %.1f us cpu/request\n", "'$round'", b, p, r, (t/hz)/n*1e6}'
  done
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $dir
done
done
