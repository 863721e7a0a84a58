"""Deploys a token, approves N investors with a registered wallet each, then
requests one mint to each at once and waits until every mint is settled.

Prints mints settled per second from the first request to the last
settlement and p50/p99 request-to-settled (the server's own timestamps:
each operation's `created_at`, and its `updated_at` once settled), the
devnet blocks and transactions in that window (from /metrics), and the
server's CPU time per mint.
"""
import sys
import uuid

from client import caller
from concurrent.futures import ThreadPoolExecutor
from e2e import cpu_seconds, every, metric, onboard, ts, wait
from e2e import metrics as read_metrics

base, key, n, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
call = caller(base, key)


def metrics():
    return read_metrics(base)


token = call("POST", "/v1/tokens", {"name": "Bench Fund", "symbol": "BENCH", "decimals": 0})
wait("deployment", lambda: call("GET", f"/v1/tokens/{token['id']}")["status"] == "deployed")


with ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(lambda i: onboard(call, i), range(n)))
wait("registrations", lambda: metric(metrics(), "rwa_identity_wallets_total") >= n)


def mint(i):
    return call("POST", f"/v1/tokens/{token['id']}/mints",
                {"to": ids[i], "amount": str(1000 + i)},
                headers={"Idempotency-Key": str(uuid.uuid4())})


before = metrics()
cpu0 = cpu_seconds(pid)
start = time.monotonic()
with ThreadPoolExecutor(32) as pool:
    ops = list(pool.map(mint, range(n)))
requested_in = time.monotonic() - start
settled = 'state="settled"'
wait("mints", lambda: metric(metrics(), "rwa_operations_total", settled) >= n)
waited = time.monotonic() - start
cpu = cpu_seconds(pid) - cpu0
after = metrics()


items = every(call, "/v1/operations?kind=mint")
assert len(items) == n and all(o["status"] == "settled" for o in items), "every mint settled"
first = min(ts(o["created_at"]) for o in items)
last = max(ts(o["updated_at"]) for o in items)
window = (last - first).total_seconds()
latencies = sorted((ts(o["updated_at"]) - ts(o["created_at"])).total_seconds() for o in items)
p50 = latencies[len(latencies) // 2]
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
blocks = metric(after, "rwa_devnet_blocks_total") - metric(before, "rwa_devnet_blocks_total")
txs = metric(after, "rwa_devnet_transactions_total") - metric(before, "rwa_devnet_transactions_total")
hashes = len({o["tx_hash"] for o in items})
print(f"mints={n} requests_posted_in_s={requested_in:.2f} client_saw_all_in_s={waited:.2f}")
print(f"first_request_to_last_settled_s={window:.2f} mints_per_s={n / window:.0f}")
print(f"request_to_settled_p50_s={p50:.2f} p99_s={p99:.2f}")
print(f"blocks={blocks:.0f} transactions={txs:.0f} mint_transactions={hashes} "
      f"server_cpu_s={cpu:.2f} cpu_ms_per_mint={cpu * 1000 / n:.2f}")
