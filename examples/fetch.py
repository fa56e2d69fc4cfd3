"""Fetch URLs with requests: each once over one keep-alive session, then each on a new connection.

    python examples/fetch.py URL [URL ...]

A plain requests program with nothing of pytcp_green in it.  Run it over the stack with
``pytcp-green run --lab --peer 'python3 -m http.server 8000' --wait-port 8000 examples/fetch.py
http://198.18.0.1:8000/`` (or ``make demo``, which does that and checks the bodies' hashes).

One line per request: ``GET <url> -> <status>, <bytes> bytes, sha256 <hex>, <ms> ms (<how>)``.
The exit status is 1 if any request failed or did not answer 200.
"""

from __future__ import annotations

import hashlib
import sys
import time

import requests


def fetch(get: object, url: str, how: str) -> bool:
    assert callable(get)
    started = time.monotonic()
    try:
        response = get(url, timeout=30)
    except requests.RequestException as exc:
        print(f"GET {url} -> error: {exc} ({how})")
        return False
    body = response.content
    elapsed = (time.monotonic() - started) * 1000
    digest = hashlib.sha256(body).hexdigest()
    print(f"GET {url} -> {response.status_code}, {len(body)} bytes, sha256 {digest}, {elapsed:.1f} ms ({how})")
    return bool(response.status_code == 200)


def main(urls: list[str]) -> int:
    if not urls:
        print(__doc__, file=sys.stderr)
        return 2
    ok = True
    with requests.Session() as session:
        for url in urls:
            ok &= fetch(session.get, url, "keep-alive")
    for url in urls:
        ok &= fetch(requests.get, url, "new connection")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
