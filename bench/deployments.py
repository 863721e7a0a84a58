"""Issues N tokens at once and waits until every one is deployed.

Prints deployments per minute over the whole batch, and per-token time from
its POST to `deployed` (p50, p99), read from the token's own timestamps.
"""
import sys
import time

from client import caller
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

base, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])


call = caller(base, key)


def issue(i):
    return call("POST", "/v1/tokens", {
        "name": f"Bench Fund {i}", "symbol": f"B{i}", "decimals": 6,
        "compliance": {"country_allow": ["FR", "DE"], "max_holders": 500,
                       "max_balance_per_investor": "1000000000", "lockup_seconds": 86400},
    })["id"]


start = time.monotonic()
with ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(issue, range(n)))
posted = time.monotonic() - start
pending = set(ids)
tokens = {}
while pending:
    time.sleep(0.2)
    for t in call("GET", f"/v1/tokens?limit=200")["items"]:
        if t["id"] in pending and t["status"] != "pending_deployment":
            pending.discard(t["id"])
            tokens[t["id"]] = t
    if time.monotonic() - start > 1800:
        sys.exit(f"{len(pending)} tokens still pending after 30 minutes")
elapsed = time.monotonic() - start
failed = [t for t in tokens.values() if t["status"] != "deployed"]


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


lat = sorted((ts(t["updated_at"]) - ts(t["created_at"])).total_seconds() for t in tokens.values())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"tokens={n} failed={len(failed)} posted_in_s={posted:.2f} all_deployed_in_s={elapsed:.2f}")
print(f"deployments_per_minute={n / elapsed * 60:.1f}")
print(f"time_to_deployed_s p50={p(0.5):.2f} p99={p(0.99):.2f} max={lat[-1]:.2f}")
