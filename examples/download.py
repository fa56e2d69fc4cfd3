"""Download URLs with requests and print each body's size and SHA-256: output that no stack may change.

    python examples/download.py URL [URL ...]

The program `pytcp-green compare` is shown with in README: over the kernel and over the stack it
must print the same lines and exit 0 (1 if any request failed or did not answer 200).
"""

from __future__ import annotations

import hashlib
import sys

import requests


def main(urls: list[str]) -> int:
    ok = True
    with requests.Session() as session:
        for url in urls:
            try:
                response = session.get(url, timeout=30)
            except requests.RequestException as exc:
                print(f"{url}: error: {exc}")
                ok = False
                continue
            print(f"{url}: {response.status_code}, {len(response.content)} bytes, "
                  f"sha256 {hashlib.sha256(response.content).hexdigest()}")
            ok &= response.status_code == 200
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
