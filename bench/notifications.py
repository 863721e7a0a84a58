"""Webhook delivery throughput and latency: ENDPOINTS endpoints, each
subscribed to every event, on one receiver; EVENTS events appended at RATE
a second (each an investor created through the API); waits until every
delivery arrived and prints deliveries per second (first event appended to
last delivery received) and the latency from each event's commit to its
receipt. Usage: python3 bench/notifications.py BASE KEY RECEIVER [ENDPOINTS
EVENTS RATE]"""
import json
import sys
import threading
import time
import urllib.request
import uuid

from client import caller

base, key, receiver = sys.argv[1], sys.argv[2], sys.argv[3]
endpoints, events, rate = (int(a) for a in (sys.argv[4:7] + ["100", "1000", "200"][len(sys.argv[4:7]):]))
call = caller(base, key)


def stats():
    with urllib.request.urlopen(receiver + "/stats") as r:
        return json.loads(r.read())


for n in range(endpoints):
    call("POST", "/v1/webhooks", {"url": f"{receiver}/hook/{n}", "events": ["*"]})
# Only the events appended from here on are counted: the webhooks' own
# `webhook.created` events went to the endpoints registered before them.
time.sleep(2)
baseline = stats()["count"]

def append(worker, workers):
    for i in range(worker, events, workers):
        due = start + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        call("POST", "/v1/investors", {
            "name": f"Bench Investor {i}", "email": f"b{i}.{uuid.uuid4().hex[:8]}@bench.example",
            "country": "DE", "type": "individual", "accredited": False,
        })

start = time.time()
workers = [threading.Thread(target=append, args=(w, 8)) for w in range(8)]
for w in workers:
    w.start()
for w in workers:
    w.join()
appended = time.time() - start
want = baseline + endpoints * events
deadline = time.time() + 300
s = stats()
while s["count"] < want and time.time() < deadline:
    time.sleep(0.5)
    s = stats()
received = s["count"] - baseline
print(f"endpoints={endpoints} events={events} appended_in={appended:.1f}s (target {events / rate:.1f}s)")
if endpoints:
    elapsed = s["last_ms"] / 1000 - start
    print(f"deliveries={received} of {endpoints * events} in {elapsed:.1f}s = {received / elapsed:.0f}/s")
    print(f"latency commit->receipt: p50={s['p50_ms']} ms p99={s['p99_ms']} ms max={s['max_ms']} ms")
