"""Deploys a token, approves N investors with a registered wallet each, then
requests one mint to each at once and waits until every mint is settled.

Prints mints settled per second from the first request to the last
settlement and p50/p99 request-to-settled (the server's own timestamps:
each operation's `created_at`, and its `updated_at` once settled), the
devnet blocks and transactions in that window (from /metrics), and the
server's CPU time per mint.
"""
import sys
import time
import urllib.request
import uuid

from client import caller
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

base, key, n, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
call = caller(base, key)


def metric(text, name, label=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics():
    with urllib.request.urlopen(base + "/metrics") as r:
        return r.read().decode()


def cpu_seconds():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, USER_HZ 100


def wait(what, done, limit=1800):
    start = time.monotonic()
    while not done():
        time.sleep(0.2)
        if time.monotonic() - start > limit:
            sys.exit(f"{what} still pending after {limit} s")


token = call("POST", "/v1/tokens", {"name": "Bench Fund", "symbol": "BENCH", "decimals": 0})
wait("deployment", lambda: call("GET", f"/v1/tokens/{token['id']}")["status"] == "deployed")


def onboard(i):
    investor = call("POST", "/v1/investors", {
        "name": f"Investor {i:06d}", "email": f"investor{i}@example.com",
        "country": "FR", "type": "individual", "accredited": False,
    })
    call("POST", f"/v1/investors/{investor['id']}/wallets", {"address": "0x" + f"{i + 1:040x}"})
    call("POST", f"/v1/investors/{investor['id']}/kyc", {
        "decision": "approved", "expires_at": "2099-01-01T00:00:00Z", "reason": "bench"})
    return investor["id"]


with ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(onboard, range(n)))
wait("registrations", lambda: metric(metrics(), "rwa_identity_wallets_total") >= n)


def mint(i):
    return call("POST", f"/v1/tokens/{token['id']}/mints",
                {"to": ids[i], "amount": str(1000 + i)},
                headers={"Idempotency-Key": str(uuid.uuid4())})


before = metrics()
cpu0 = cpu_seconds()
start = time.monotonic()
with ThreadPoolExecutor(32) as pool:
    ops = list(pool.map(mint, range(n)))
requested_in = time.monotonic() - start
settled = 'state="settled"'
wait("mints", lambda: metric(metrics(), "rwa_operations_total", settled) >= n)
waited = time.monotonic() - start
cpu = cpu_seconds() - cpu0
after = metrics()


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


items, cursor = [], ""
while True:
    page = call("GET", f"/v1/operations?kind=mint&limit=200&cursor={cursor}")
    items += page["items"]
    cursor = page.get("next_cursor")
    if not cursor:
        break
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
