#!/usr/bin/env bash
# Webhook deliveries per second and their latency from commit to receipt:
# 100 endpoints each subscribed to every event, 1,000 events appended at 200
# a second (100,000 deliveries), one local receiver (bench/webhook_receiver.js,
# Node's http). Prints the server's CPU time per delivery beside the rate.
# The same events go through the RabbitMQ event stream (the machine's
# RabbitMQ, a fresh exchange) to bench/stream_consumer.py (pika, installed
# into its own virtual environment), which reports their latency from commit,
# duplicates and order.
# Usage: bench/notifications.sh [sqlite|postgres] [ENDPOINTS EVENTS RATE]
# Results are recorded by hand in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"; shift || true
scripts/services.sh >/dev/null
cargo build --release -p rwa --quiet

. bench/serve.sh
venv="${XDG_CACHE_HOME:-$HOME/.cache}/rwa/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pika' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pika==1.3.2"
fi
amqp_url="amqp://guest:guest@127.0.0.1:5672/%2f"
exchange="rwa.bench.$$"
bench_env=(RWA_WEBHOOK_ALLOW_PRIVATE=true "RWA_AMQP_URL=$amqp_url" "RWA_AMQP_EXCHANGE=$exchange")
start_server "$backend"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
node bench/webhook_receiver.js "$port" &
receiver_pid=$!
events="${2:-1000}"
"$venv/bin/python" bench/stream_consumer.py "$amqp_url" "$exchange" investor.created "$events" > "$dir/stream.out" &
consumer_pid=$!
trap 'kill $pid $receiver_pid $consumer_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/stats" >/dev/null; do sleep 0.05; done
until grep -q ready "$dir/stream.out" 2>/dev/null; do sleep 0.05; done
before=$(cpu_ticks)
python3 bench/notifications.py "http://$addr" "$key" "http://127.0.0.1:$port" "$@"
after=$(cpu_ticks)
wait "$consumer_pid" || true
echo "rabbitmq stream: $(tail -1 "$dir/stream.out")"
delivered=$(curl -s "http://127.0.0.1:$port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$delivered" \
  'BEGIN { printf "server cpu: %.2f s", t / hz; if (n > 0) printf " over %d deliveries = %.0f us/delivery", n, (t / hz) / n * 1e6; print "" }'
echo "rss_after_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
