"""Transfers settled end to end: deploys a token, approves N investors with
a registered wallet each, mints to every one of them (not timed), then
requests T transfers between them at once and waits until every transfer
is settled.

Prints transfers settled per second from the first request to the last
settlement and p50/p99 request-to-settled (the server's own timestamps:
each transfer's `created_at`, and its `updated_at` once settled), the
devnet blocks and transactions in that window (from /metrics), the
settlement transactions the transfers shared, and the server's CPU time
per transfer.
"""
import sys
import time
import uuid

from client import caller
from concurrent.futures import ThreadPoolExecutor
from e2e import cpu_seconds, every, metric, metrics, onboard, ts, wait

base, key, n, t, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
call = caller(base, key)

token = call("POST", "/v1/tokens", {"name": "Bench Fund", "symbol": "BENCH", "decimals": 0})
wait("deployment", lambda: call("GET", f"/v1/tokens/{token['id']}")["status"] == "deployed")
with ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(lambda i: onboard(call, i), range(n)))
wait("registrations", lambda: metric(metrics(base), "rwa_identity_wallets_total") >= n)


def fund(i):
    return call("POST", f"/v1/tokens/{token['id']}/mints", {"to": ids[i], "amount": "1000000"},
                headers={"Idempotency-Key": str(uuid.uuid4())})


with ThreadPoolExecutor(32) as pool:
    list(pool.map(fund, range(n)))
wait("mints", lambda: metric(metrics(base), "rwa_operations_total", 'state="settled"') >= n)
# Transfers are checked against the index: wait until it holds every mint.
wait("index", lambda: len(every(call, f"/v1/tokens/{token['id']}/holders")) >= n)


def transfer(i):
    sender = i % n
    receiver = (sender + 1 + (i * 7) % (n - 1)) % n
    return call("POST", "/v1/transfers",
                {"token_id": token["id"], "from": ids[sender], "to": ids[receiver],
                 "amount": str(1 + i % 5)},
                headers={"Idempotency-Key": str(uuid.uuid4())})


before = metrics(base)
cpu0 = cpu_seconds(pid)
start = time.monotonic()
with ThreadPoolExecutor(32) as pool:
    list(pool.map(transfer, range(t)))
requested_in = time.monotonic() - start
wait("transfers", lambda: metric(metrics(base), "rwa_transfers_settled_total") >= t)
waited = time.monotonic() - start
cpu = cpu_seconds(pid) - cpu0
after = metrics(base)

items = every(call, f"/v1/transfers?token_id={token['id']}")
statuses = {}
for x in items:
    statuses[x["status"]] = statuses.get(x["status"], 0) + 1
assert len(items) == t and statuses == {"settled": t}, f"every transfer settled: {statuses}"
first = min(ts(x["created_at"]) for x in items)
last = max(ts(x["updated_at"]) for x in items)
window = (last - first).total_seconds()
latencies = sorted((ts(x["updated_at"]) - ts(x["created_at"])).total_seconds() for x in items)
p50 = latencies[len(latencies) // 2]
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
blocks = metric(after, "rwa_devnet_blocks_total") - metric(before, "rwa_devnet_blocks_total")
txs = metric(after, "rwa_devnet_transactions_total") - metric(before, "rwa_devnet_transactions_total")
hashes = len({x["tx_hash"] for x in items})
print(f"investors={n} transfers={t} requests_posted_in_s={requested_in:.2f} client_saw_all_in_s={waited:.2f}")
print(f"first_request_to_last_settled_s={window:.2f} transfers_per_s={t / window:.0f}")
print(f"request_to_settled_p50_s={p50:.2f} p99_s={p99:.2f}")
print(f"blocks={blocks:.0f} transactions={txs:.0f} settlement_transactions={hashes} "
      f"server_cpu_s={cpu:.2f} cpu_ms_per_transfer={cpu * 1000 / t:.2f}")
