"""The RabbitMQ event stream's side of bench/notifications.sh: declares a
queue bound to the stream's exchange (`#`), then consumes until WANT events
of type TYPE arrived (or TIMEOUT seconds passed) and prints, as one JSON
line, how many arrived, how many were duplicates (by message id), whether
they came in `seq` order, the first and last arrival, and the latency from
each event's commit (its `created_at`) to its receipt.
Usage: python3 bench/stream_consumer.py URL EXCHANGE TYPE WANT [TIMEOUT]"""
import datetime
import json
import sys
import time

import pika

url, exchange, kind, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 300.0

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.exchange_declare(exchange, exchange_type="topic", durable=True)
queue = channel.queue_declare("", exclusive=True).method.queue
channel.queue_bind(queue, exchange, routing_key="#")
channel.basic_qos(prefetch_count=1000)
print("ready", flush=True)

seen, latencies, duplicates, in_order, last_seq = set(), [], 0, True, 0
first = last = None
deadline = time.time() + timeout
for method, properties, body in channel.consume(queue, inactivity_timeout=1):
    if method is None:
        if time.time() > deadline:
            break
        continue
    now = time.time()
    channel.basic_ack(method.delivery_tag, multiple=False)
    if properties.message_id in seen:
        duplicates += 1
        continue
    seen.add(properties.message_id)
    event = json.loads(body)
    in_order = in_order and event["seq"] > last_seq
    last_seq = event["seq"]
    if event["type"] != kind:
        continue
    created = datetime.datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).timestamp()
    latencies.append((now - created) * 1000)
    first = first or now
    last = now
    if len(latencies) >= want or time.time() > deadline:
        break
latencies.sort()
pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None
print(json.dumps({
    "received": len(latencies), "duplicates": duplicates, "in_order": in_order,
    "first": first, "last": last,
    "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(latencies[-1], 1) if latencies else None,
}), flush=True)
connection.close()
