"""A stand-in for `vllm serve` in launcher tests: `stub_serve.py serve MODEL --host H --port P [...]`.

Answers GET /health with 200 (503 until --stub-delay seconds have passed: a slow start), ignores
other flags; with --stub-exit N it
exits with N at once (a node that fails to start); with --stub-hang it never listens (a node that
never becomes ready). Writes its pid to $STUB_PID_DIR/<port>.pid so tests can check for orphans.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READY_AT = 0.0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok" if self.path == "/health" else b"vllm:prefix_cache_hits_total 0.0\n"
        starting = self.path == "/health" and time.monotonic() < READY_AT
        self.send_response(503 if starting else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("model")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stub-exit", type=int, default=None)
    p.add_argument("--stub-hang", action="store_true")
    p.add_argument("--stub-delay", type=float, default=0.0)
    args, _ = p.parse_known_args()
    global READY_AT
    READY_AT = time.monotonic() + args.stub_delay
    pid_dir = os.environ.get("STUB_PID_DIR")
    if pid_dir:
        with open(os.path.join(pid_dir, f"{args.port}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
    print(f"stub serve {args.model} on {args.host}:{args.port}", flush=True)
    if args.stub_exit is not None:
        print("stub: failing at start", flush=True)
        return args.stub_exit
    if args.stub_hang:
        while True:
            time.sleep(1)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
