#!/usr/bin/env bash
# Job queue throughput and enqueue-to-start latency on SQLite and PostgreSQL,
# one worker process with a bench queue of high concurrency (the production
# defaults of 3-10 would cap it). Durable settings: SQLite WAL with
# synchronous=NORMAL; PostgreSQL synchronous_commit=on (checked below).
# Usage: bench/jobs.sh [jobs] [concurrency]; results go by hand into
# docs/benchmarks.md with the machine's load.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${1:-20000}"; concurrency="${2:-200}"
scripts/services.sh
cargo build --release -p rwa-jobs --example queue_bench --quiet
bin=target/release/examples/queue_bench
echo "postgres synchronous_commit=$(psql -h 127.0.0.1 -U postgres -tAc 'show synchronous_commit')"

# Each run on a fresh database, so latency percentiles cover that run only.
for backend in sqlite postgres; do
  for run in "drain $jobs" "steady 10 2000" "steady 10 5000"; do
    if [ "$backend" = sqlite ]; then
      dir="$(mktemp -d)"; url="sqlite://$dir/bench.db"
    else
      psql -h 127.0.0.1 -U postgres -qc "drop database if exists rwa_bench_jobs" -qc "create database rwa_bench_jobs"
      url="postgres://postgres@127.0.0.1:5432/rwa_bench_jobs"
    fi
    echo "--- $backend $run (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086
    "$bin" "$url" $run "$concurrency"
  done
done
psql -h 127.0.0.1 -U postgres -qc "drop database if exists rwa_bench_jobs"
