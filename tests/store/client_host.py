"""A store client in its own process, driven over a pipe: `python -m tests.store.client_host IMPL`.

Requests on stdin and replies on the original stdout, each a 4-byte length + msgpack
(`[method, args, kwargs]` -> `[ok, result]`). Tests kill it with SIGKILL instead of calling close():
the real client's close() holds the GIL for about 2 s, and a killed client is what the TTL tests need.
"""

from __future__ import annotations

import os
import sys

import msgpack


def main() -> int:
    impl = sys.argv[1]
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything the C++ side prints goes to the log, not into the protocol stream
    proto_in = sys.stdin.buffer
    os.environ.setdefault("MC_STORE_CLIENT_SETUP_RETRIES", "1")
    from kvtest.store import store_class

    store = store_class(impl)()  # type: ignore[arg-type]
    while True:
        head = proto_in.read(4)
        if len(head) < 4:
            return 0
        body = proto_in.read(int.from_bytes(head, "big"))
        method, args, kwargs = msgpack.unpackb(body, raw=False)
        try:
            reply = [True, getattr(store, method)(*args, **kwargs)]
        except Exception as e:  # the caller sees the exception text
            reply = [False, f"{type(e).__name__}: {e}"]
        data = msgpack.packb(reply, use_bin_type=True)
        proto_out.write(len(data).to_bytes(4, "big") + data)


if __name__ == "__main__":
    sys.exit(main())
