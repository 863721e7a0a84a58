"""What the end-to-end benchmarks share: reading /metrics, the server's CPU
time, waiting for a state, the server's timestamps, paging a list, and
onboarding investors with a registered wallet each."""
import sys
import time
import urllib.request
from datetime import datetime


def metric(text, name, label=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics(base):
    with urllib.request.urlopen(base + "/metrics") as r:
        return r.read().decode()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, USER_HZ 100


def wait(what, done, limit=1800):
    start = time.monotonic()
    while not done():
        time.sleep(0.2)
        if time.monotonic() - start > limit:
            sys.exit(f"{what} still pending after {limit} s")


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def every(call, path):
    items, cursor = [], ""
    sep = "&" if "?" in path else "?"
    while True:
        page = call("GET", f"{path}{sep}limit=200&cursor={cursor}")
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def onboard(call, i):
    investor = call("POST", "/v1/investors", {
        "name": f"Investor {i:06d}", "email": f"investor{i}@example.com",
        "country": "FR", "type": "individual", "accredited": False,
    })
    call("POST", f"/v1/investors/{investor['id']}/wallets", {"address": "0x" + f"{i + 1:040x}"})
    call("POST", f"/v1/investors/{investor['id']}/kyc", {
        "decision": "approved", "expires_at": "2099-01-01T00:00:00Z", "reason": "bench"})
    return investor["id"]
