# Sourced by the benchmarks: `start_server BACKEND [CONFIG_TOML]` starts the
# release build of `rwa serve` on a fresh data dir (SQLite there, or a
# throw-away PostgreSQL database), waits until it is ready, creates an
# organization, and sets `dir`, `pid`, `addr`, `key` and `ready_ms` (start to
# ready). Rate limits are off (a load generator is one client with one key)
# unless `bench_env` (an array of VAR=value) says otherwise; with `scheme=https`
# the server is reached over TLS (`bench_env` then names the certificate).
# Everything is removed on exit. `measure NAME WRK_ARGS…` runs wrk
# (2 threads, 64 connections, 5 s warm-up, then `$duration` with latencies)
# and prints the server's CPU time per request served.
start_server() {
  local backend="$1" config="${2:-}" start_ns
  dir="$(mktemp -d)"
  local env_args=(RWA_LOG_FORMAT=json RUST_LOG=info RWA_RATE_LIMITS=off ${bench_env[@]+"${bench_env[@]}"}) config_args=()
  if [ -n "$config" ]; then
    printf '%s\n' "$config" > "$dir/bench.toml"
    config_args=(--config "$dir/bench.toml")
  fi
  if [ "$backend" = postgres ]; then
    scripts/services.sh
    bench_db="rwa_bench_$$"
    psql -h 127.0.0.1 -U postgres -qc "create database $bench_db"
    env_args+=("RWA_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$bench_db")
  fi
  start_ns=$(date +%s%N)
  env "${env_args[@]}" ./target/release/rwa "${config_args[@]}" serve --addr 127.0.0.1:0 --data-dir "$dir" 2>"$dir/log" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; [ -n "${bench_db:-}" ] && psql -h 127.0.0.1 -U postgres -qc "drop database if exists $bench_db with (force)"; rm -rf "$dir"' EXIT
  addr=""
  for _ in $(seq 1 500); do
    addr="$(grep -o '"addr":"[^"]*"' "$dir/log" | head -1 | cut -d'"' -f4 || true)"
    [ -n "$addr" ] && break; sleep 0.01
  done
  until curl -ksf "${scheme:-http}://$addr/health/ready" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "rwa serve exited:" >&2; cat "$dir/log" >&2; exit 1; }
    sleep 0.005
  done
  ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  key="$(env "${env_args[@]}" RUST_LOG=warn ./target/release/rwa org create --name Bench --data-dir "$dir" | sed -E 's/.*"api_key":"([^"]+)".*/\1/')"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
measure() {
  local name="$1"; shift
  wrk -t2 -c64 -d5s "$@" >/dev/null
  local before after out requests
  before=$(cpu_ticks)
  out="$(wrk -t2 -c64 -d"$duration" --latency "$@")"
  after=$(cpu_ticks)
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "--- $name"
  echo "$out"
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "server cpu: %.2f s over %d requests = %.0f us/request\n", t / hz, n, (t / hz) / n * 1e6 }'
}
