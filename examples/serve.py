"""Serve a directory with the standard library's http.server until interrupted.

    python examples/serve.py [--bind ADDR] [--port PORT] [DIRECTORY]

Nothing of pytcp_green in it: run over the stack with ``pytcp-green run --lab examples/serve.py``
and fetch from the kernel side (``ip netns exec <lab> curl http://198.18.0.2:8080/``), as
``make demo`` does.
"""

from __future__ import annotations

import argparse
import functools
import http.server


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per connection


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a directory over HTTP/1.1")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("directory", nargs="?", default=".")
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.directory)
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as httpd:
        print(f"serving {args.directory} on {args.bind}:{args.port}", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    main()
