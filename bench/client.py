"""The benchmarks' HTTP client: JSON calls with the organization's key."""
import json
import urllib.request


def caller(base, key):
    """A function `call(method, path, body=None)` answering the decoded JSON."""

    def call(method, path, body=None, headers=None):
        req = urllib.request.Request(
            base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                     **(headers or {})},
        )
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")

    return call
