"""Onboards N investors with a wallet each, approves them all at once, and
waits until every wallet is registered in the identity registry.

Prints wallets registered per second from the first approval to the last
registration (the server's own timestamps: the investors' `updated_at` at
approval, the registrations' `updated_at` when settled), the devnet blocks
and transactions in that window (from /metrics), and the server's CPU time.
"""
import sys
import time
import urllib.request

from client import caller
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

base, key, n, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


call = caller(base, key)


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics():
    with urllib.request.urlopen(base + "/metrics") as r:
        return r.read().decode()


def cpu_seconds():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, USER_HZ 100


def onboard(i):
    investor = call("POST", "/v1/investors", {
        "name": f"Investor {i:06d}", "email": f"investor{i}@example.com",
        "country": "FR", "type": "individual", "accredited": False,
    })
    wallet = "0x" + f"{i + 1:040x}"
    call("POST", f"/v1/investors/{investor['id']}/wallets", {"address": wallet})
    return investor["id"]


def approve(i):
    return call("POST", f"/v1/investors/{i}/kyc", {
        "decision": "approved", "expires_at": "2099-01-01T00:00:00Z", "reason": "bench",
    })


with ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(onboard, range(n)))
before = metrics()
cpu0 = cpu_seconds()
start = time.monotonic()
with ThreadPoolExecutor(16) as pool:
    list(pool.map(approve, ids))
approved_in = time.monotonic() - start
while metric(metrics(), "rwa_identity_wallets_total") < n:
    time.sleep(0.2)
    if time.monotonic() - start > 1800:
        sys.exit("wallets still pending after 30 minutes")
waited = time.monotonic() - start
cpu = cpu_seconds() - cpu0
after = metrics()


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


investors, cursor = [], ""
while True:
    page = call("GET", f"/v1/investors?limit=200&cursor={cursor}")
    investors += page["items"]
    cursor = page.get("next_cursor")
    if not cursor:
        break
regs = [r for i in investors for r in i["registrations"]]
assert len(regs) == n and all(r["status"] == "registered" for r in regs), "every wallet registered"
first_approval = min(ts(i["updated_at"]) for i in investors)
last_registration = max(ts(r["updated_at"]) for r in regs)
window = (last_registration - first_approval).total_seconds()
blocks = metric(after, "rwa_devnet_blocks_total") - metric(before, "rwa_devnet_blocks_total")
txs = metric(after, "rwa_devnet_transactions_total") - metric(before, "rwa_devnet_transactions_total")
print(f"investors={n} approvals_posted_in_s={approved_in:.2f} client_saw_all_in_s={waited:.2f}")
print(f"first_approval_to_last_registration_s={window:.2f} wallets_per_s={n / window:.0f}")
print(f"blocks={blocks:.0f} transactions={txs:.0f} server_cpu_s={cpu:.2f}")
