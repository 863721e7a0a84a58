#!/usr/bin/env bash
# A/B of two rwa binaries in one run (the machines vary 3-4x between days, so
# only figures from one run compare): each serves the chosen backend in turn,
# twice, under wrk (2 threads, 64 connections, 3 s warm-up, 15 s measured) on
# GET /health/live, an authenticated GET /v1/org and the write route
# POST /v1/tokens (bench/http/tokens.lua; the deployment queue not served);
# prints req/s, p99 and the server's CPU time per request. Each server gets a
# fresh database.
# Usage: bench/http-ab.sh OLD_BINARY NEW_BINARY [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"; new="$2"; backend="${3:-sqlite}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ "$backend" = postgres ] && scripts/services.sh >/dev/null
ticks=$(getconf CLK_TCK)
lua="$PWD/bench/http/tokens.lua"
for round in 1 2; do
for bin in "$old" "$new"; do
  dir=$(mktemp -d)
  printf '[jobs.queues.token-deployment]\nconcurrency = 0\n' > "$dir/ab.toml"
  env_args=(RUST_LOG=warn,rwa=info)
  if [ "$backend" = postgres ]; then
    db="rwa_ab_$$_$round"
    psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db with (force)" -qc "create database $db"
    env_args+=("RWA_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db")
  fi
  env "${env_args[@]}" "$bin" --config "$dir/ab.toml" serve --addr 127.0.0.1:0 --data-dir "$dir" 2>"$dir/log" & pid=$!
  for _ in $(seq 1 100); do addr=$(sed -nE 's/.*listening addr=([0-9.:]+).*/\1/p' "$dir/log" | head -1); [ -n "$addr" ] && break; sleep 0.1; done
  key=$(env "${env_args[@]}" "$bin" org create --name AB --data-dir "$dir" | sed -E 's/.*"api_key":"([^"]+)".*/\1/')
  for route in /health/live /v1/org tokens; do
    args=(-t2 -c64 -H "Authorization: Bearer $key")
    path=$route
    if [ "$route" = tokens ]; then args+=(-s "$lua"); path=/v1/tokens; fi
    wrk "${args[@]}" -d3s "http://$addr$path" >/dev/null
    b=$(awk '{print $14+$15}' "/proc/$pid/stat")
    out=$(wrk "${args[@]}" -d15s --latency "http://$addr$path")
    a=$(awk '{print $14+$15}' "/proc/$pid/stat")
    n=$(awk '/requests in/ {print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    awk -v r="$round" -v b="$bin" -v p="$route" -v t=$((a-b)) -v hz="$ticks" -v n="$n" -v rps="$rps" -v p99="$p99" \
      'BEGIN {printf "round %s %s %s %s: %s req/s, p99 %s, %.0f us cpu/request\n", r, "'"$backend"'", b, p, rps, p99, (t/hz)/n*1e6}'
    grep -E "errors:" <<<"$out" | grep -v "connect 0, read 0, write 0, status 0, timeout 0" || true
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"
  [ "$backend" = postgres ] && psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db with (force)"
done
done
