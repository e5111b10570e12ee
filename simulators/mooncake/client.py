"""`MooncakeDistributedStore` for the mock master: the methods, arguments and return codes of
`mooncake.store.MooncakeDistributedStore` (mooncake-integration/store/store_py.cpp, real_client.cpp),
checked against the installed wheel by tests/store/test_differential.py.

Each client mounts its own segment (a SegmentServer) and pings the master every second; bytes go from
the writer's process straight into the owner's segment, as with the real transfer engine.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from .errors import ErrorCode
from .master import MIN_SEGMENT_SIZE
from .metadata import Metadata, MetadataError, open_metadata
from .protocol import connect, recv_msg, send_msg
from .replica import BufferDescriptor, MemoryDescriptor, ReplicaDescriptor
from .segment import PeerConnection, SegmentServer

PING_INTERVAL_S = 1.0
# The real client waited through a 13 s SIGSTOP of the master without timing out; the mock gives up later
# than that, so a paused master looks the same, but a wedged one cannot hang a test forever.
RPC_TIMEOUT_S = 60.0
OK = 0
RPC_FAIL = int(ErrorCode.RPC_FAIL)
INVALID_PARAMS = int(ErrorCode.INVALID_PARAMS)
ALREADY_EXISTS = int(ErrorCode.OBJECT_ALREADY_EXISTS)


def _key(key: Any) -> str:
    """pybind11 refuses a non-str key with TypeError before any code runs; so does the mock."""
    if not isinstance(key, str):
        raise TypeError(f"incompatible function arguments: key must be str, not {type(key).__name__}")
    return key


def _keys(keys: Any) -> list[str]:
    return [_key(k) for k in keys]


def _as_view(value: Any) -> memoryview:
    view = memoryview(value)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


class MooncakeDistributedStore:
    def __init__(self) -> None:
        self._master_addr: tuple[str, int] | None = None
        self._master_sock: Any = None
        self._master_lock = threading.Lock()
        self._segment: SegmentServer | None = None
        self._segment_size = 0
        self._local_buffer_size = 0
        self._metadata: Metadata = Metadata()
        self._peers: dict[str, PeerConnection] = {}
        self._peers_lock = threading.Lock()
        self._addr_cache: dict[str, str] = {}
        self._buffers: dict[int, int] = {}
        self._client_id = f"{uuid.uuid4().int >> 64}-{uuid.uuid4().int >> 64}"
        self._stop = threading.Event()
        self._pinger: threading.Thread | None = None
        self._ready = False

    # --- RPC to the master --------------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> tuple[int, Any]:
        """(code, result); RPC_FAIL when the master cannot be reached."""
        if self._master_addr is None:
            return RPC_FAIL, None
        with self._master_lock:
            for attempt in (0, 1):
                try:
                    if self._master_sock is None:
                        self._master_sock = connect(*self._master_addr, timeout=1.0)
                        self._master_sock.settimeout(RPC_TIMEOUT_S)
                    send_msg(self._master_sock, [method, list(args)])
                    code, result = recv_msg(self._master_sock)
                    return int(code), result
                except TimeoutError:
                    self._drop_master()
                    return int(ErrorCode.RPC_TIMEOUT), None
                except (OSError, ConnectionError, ValueError):
                    self._drop_master()
                    if attempt == 1:
                        return RPC_FAIL, None
            return RPC_FAIL, None

    def _drop_master(self) -> None:
        if self._master_sock is not None:
            with contextlib.suppress(OSError):
                self._master_sock.close()
        self._master_sock = None

    # --- setup / teardown -------------------------------------------------------------------------------
    def setup(self, *args: Any, **kwargs: Any) -> int:
        """setup(local_hostname, metadata_server, global_segment_size, local_buffer_size, protocol,
        rdma_devices, master_server_addr, ...) or setup(config: dict)."""
        if args and isinstance(args[0], dict):
            conf = dict(args[0])
            if "master_server_address" in conf and "master_server_addr" not in conf:
                conf["master_server_addr"] = conf["master_server_address"]
            return self._setup(
                conf["local_hostname"],
                conf["metadata_server"],
                int(conf.get("global_segment_size", 16 << 20)),
                int(conf.get("local_buffer_size", 16 << 20)),
                str(conf.get("protocol", "tcp")),
                str(conf.get("rdma_devices", "")),
                str(conf.get("master_server_addr", "127.0.0.1:50051")),
            )
        names = ("local_hostname", "metadata_server", "global_segment_size", "local_buffer_size", "protocol",
                 "rdma_devices", "master_server_addr")  # fmt: skip
        values = dict(zip(names, args, strict=False))
        values.update({k: v for k, v in kwargs.items() if k in names})
        return self._setup(**values)

    def _setup(
        self,
        local_hostname: str,
        metadata_server: str,
        global_segment_size: int,
        local_buffer_size: int,
        protocol: str = "tcp",
        rdma_devices: str = "",
        master_server_addr: str = "127.0.0.1:50051",
    ) -> int:
        if self._ready:
            return INVALID_PARAMS
        host, _, port = master_server_addr.rpartition(":")
        try:
            self._master_addr = (host or "127.0.0.1", int(port))
        except ValueError:
            return int(ErrorCode.INTERNAL_ERROR)  # real: "Failed to create client", -1 as for a dead master
        if protocol not in ("tcp", "rdma"):
            return int(ErrorCode.INTERNAL_ERROR)  # real: the transfer engine fails to start, setup -> -1
        # The real client retries connecting MC_STORE_CLIENT_SETUP_RETRIES times (about 4 s apart).
        retries = max(1, int(os.environ.get("MC_STORE_CLIENT_SETUP_RETRIES", "1")))
        code = RPC_FAIL
        for i in range(retries):
            code, _ = self._call("ping", self._client_id)
            if code == OK:
                break
            if i + 1 < retries:
                time.sleep(1.0)
        if code != OK:
            self._master_addr = None
            return int(ErrorCode.INTERNAL_ERROR)
        try:
            self._metadata = open_metadata(metadata_server)
        except MetadataError:
            return INVALID_PARAMS
        self._local_buffer_size = int(local_buffer_size)
        self._ready = True
        self._pinger = threading.Thread(target=self._ping_loop, name="mooncake-ping", daemon=True)
        self._pinger.start()
        if 0 < global_segment_size < MIN_SEGMENT_SIZE:
            return INVALID_PARAMS  # real: no segment mounted, setup returns -600, the client still works
        if global_segment_size > 0:
            self._segment_size = int(global_segment_size)
            host_only = (
                local_hostname.rpartition(":")[0] if local_hostname.count(":") == 1 else local_hostname
            )
            self._segment = SegmentServer(host_only, self._segment_size)
            try:
                self._metadata.publish(self._segment.name, self._segment.name)
            except MetadataError:
                return int(ErrorCode.ETCD_OPERATION_ERROR)
            return self._mount()
        return OK

    def _mount(self) -> int:
        assert self._segment is not None
        code, _ = self._call(
            "mount_segment", self._client_id, self._segment.name, self._segment.name, self._segment_size
        )
        return code

    def _ping_loop(self) -> None:
        while not self._stop.wait(PING_INTERVAL_S):
            code, status = self._call("ping", self._client_id)
            if code == OK and status == "need_remount" and self._segment is not None:
                self._mount()

    def close(self) -> int:
        if not self._ready:
            return OK
        self._stop.set()
        if self._segment is not None:
            self._call("remove_client", self._client_id)
            with contextlib.suppress(MetadataError, Exception):
                self._metadata.remove(self._segment.name)
            self._segment.close()
            self._segment = None
        with self._peers_lock:
            for peer in self._peers.values():
                peer.close()
            self._peers.clear()
        with self._master_lock:
            self._drop_master()
        self._metadata.close()
        self._ready = False
        return OK

    def health_check(self) -> int:
        """0 healthy, 1 not initialised or closed, 2 master unreachable (store_py.cpp docstring)."""
        if not self._ready:
            return 1
        code, _ = self._call("ping", self._client_id)
        return 0 if code == OK else 2

    def get_hostname(self) -> str:
        return self._segment.name if self._segment else ""

    def register_buffer(self, buffer_ptr: int, size: int) -> int:
        self._buffers[int(buffer_ptr)] = int(size)
        return OK

    def unregister_buffer(self, buffer_ptr: int) -> int:
        return OK if self._buffers.pop(int(buffer_ptr), None) is not None else INVALID_PARAMS

    # --- data movement ------------------------------------------------------------------------------------
    def _peer(self, name: str) -> PeerConnection:
        with self._peers_lock:
            peer = self._peers.get(name)
            if peer is None:
                addr = self._addr_cache.get(name) or self._metadata.resolve(name)
                self._addr_cache[name] = addr
                host, _, port = addr.rpartition(":")
                peer = PeerConnection(host, int(port))
                self._peers[name] = peer
            return peer

    def _forget_peer(self, name: str) -> None:
        with self._peers_lock:
            peer = self._peers.pop(name, None)
            self._addr_cache.pop(name, None)
        if peer is not None:
            peer.close()

    def _write(self, segment: str, offset: int, data: memoryview) -> int:
        if self._segment is not None and segment == self._segment.name:
            self._segment.view[offset : offset + len(data)] = data
            return OK
        try:
            peer = self._peer(segment)
            with peer.lock:
                code = peer.write(offset, data)
            return OK if code == 0 else int(ErrorCode.TRANSFER_FAIL)
        except (OSError, ConnectionError, MetadataError):
            self._forget_peer(segment)
            return int(ErrorCode.TRANSFER_FAIL)

    def _read(self, segment: str, offset: int, out: memoryview) -> int:
        if self._segment is not None and segment == self._segment.name:
            out[:] = self._segment.view[offset : offset + len(out)]
            return OK
        try:
            peer = self._peer(segment)
            with peer.lock:
                code = peer.read_into(offset, out)
            return OK if code == 0 else int(ErrorCode.TRANSFER_FAIL)
        except (OSError, ConnectionError, MetadataError):
            self._forget_peer(segment)
            return int(ErrorCode.TRANSFER_FAIL)

    # --- put ---------------------------------------------------------------------------------------------
    def _put_one(self, key: str, data: memoryview, start: str, check_buffer: bool) -> int:
        if not self._ready:
            return INVALID_PARAMS
        size = len(data)
        # real_client: the value is staged in the local buffer; an empty or too large value fails there
        # ("Failed to allocate buffer for put operation") before the master is asked.
        if size == 0 or (check_buffer and size > self._local_buffer_size):
            return INVALID_PARAMS
        code, res = self._call(start, self._client_id, key, size)
        if code == ALREADY_EXISTS:
            return OK  # first put wins; the client reports success and the old value stays
        if code != OK:
            return code
        segment, offset = res
        code = self._write(segment, offset, data)
        if code != OK:
            self._call("put_revoke", key)
            return code
        code, _ = self._call("put_end", key)
        return code

    def put(self, key: str, value: Any, config: Any = None) -> int:
        key = _key(key)
        return self._put_one(key, _as_view(value), "put_start", True)

    def upsert(self, key: str, value: Any, config: Any = None) -> int:
        key = _key(key)
        return self._put_one(key, _as_view(value), "upsert_start", True)

    def put_from(self, key: str, buffer_ptr: int, size: int, config: Any = None) -> int:
        key = _key(key)
        if size <= 0:
            return INVALID_PARAMS
        return self._put_one(key, _ptr_view(buffer_ptr, size), "put_start", False)

    def upsert_from(self, key: str, buffer_ptr: int, size: int, config: Any = None) -> int:
        key = _key(key)
        if size <= 0:
            return INVALID_PARAMS
        return self._put_one(key, _ptr_view(buffer_ptr, size), "upsert_start", False)

    def _batch_put(self, keys: Sequence[str], views: Sequence[memoryview], check_buffer: bool) -> list[int]:
        if not self._ready:
            return [INVALID_PARAMS] * len(keys)
        if len(keys) != len(views):
            return [INVALID_PARAMS] * len(keys)
        out = [OK] * len(keys)
        todo: list[int] = []
        for i, v in enumerate(views):
            if len(v) == 0 or (check_buffer and len(v) > self._local_buffer_size):
                out[i] = INVALID_PARAMS
            else:
                todo.append(i)
        if not todo:
            return out
        code, res = self._call("batch_put_start", self._client_id, [keys[i] for i in todo],
                               [len(views[i]) for i in todo])  # fmt: skip
        if code != OK:
            for i in todo:
                out[i] = code
            return out
        ended, revoked = [], []
        for i, r in zip(todo, res, strict=True):
            if isinstance(r, int):
                out[i] = OK if r == ALREADY_EXISTS else r
                continue
            c = self._write(r[0], r[1], views[i])
            if c == OK:
                ended.append(i)
            else:
                out[i] = c
                revoked.append(i)
        if revoked:
            self._call("batch_put_revoke", [keys[i] for i in revoked])
        if ended:
            code, res = self._call("batch_put_end", [keys[i] for i in ended])
            for i, c in zip(ended, res if code == OK else [code] * len(ended), strict=True):
                out[i] = int(c)
        return out

    def put_batch(self, keys: list[str], values: list[Any], config: Any = None) -> int:
        keys = _keys(keys)
        if len(keys) != len(values):
            return INVALID_PARAMS
        views = [_as_view(v) for v in values]
        # real: the whole batch is staged in the local buffer at once; an empty value or a batch larger
        # than local_buffer_size fails all of it with -600 (checked against mooncake 0.3.13.post1)
        if (
            not self._ready
            or any(len(v) == 0 for v in views)
            or sum(map(len, views)) > self._local_buffer_size
        ):
            return INVALID_PARAMS
        codes = self._batch_put(keys, views, True)
        return next((c for c in codes if c != OK), OK)

    def upsert_batch(self, keys: list[str], values: list[Any], config: Any = None) -> int:
        keys = _keys(keys)
        codes = [self.upsert(k, v) for k, v in zip(keys, values, strict=False)]
        return next((c for c in codes if c != OK), OK)

    def batch_put_from(
        self, keys: list[str], buffer_ptrs: list[int], sizes: list[int], config: Any = None
    ) -> list[int]:
        if not (len(keys) == len(buffer_ptrs) == len(sizes)):
            return [INVALID_PARAMS] * len(keys)
        return self._batch_put(
            keys, [_ptr_view(p, s) for p, s in zip(buffer_ptrs, sizes, strict=True)], False
        )

    def batch_put_from_multi_buffers(
        self,
        keys: list[str],
        all_buffer_ptrs: list[list[int]],
        all_sizes: list[list[int]],
        config: Any = None,
    ) -> list[int]:
        if not (len(keys) == len(all_buffer_ptrs) == len(all_sizes)):
            return [INVALID_PARAMS] * len(keys)
        views = []
        for ptrs, sizes in zip(all_buffer_ptrs, all_sizes, strict=True):
            # the slices of one key are stored back to back as one object
            views.append(
                memoryview(b"".join(ctypes.string_at(p, s) for p, s in zip(ptrs, sizes, strict=True)))
            )
        return self._batch_put(keys, views, False)

    # --- get -----------------------------------------------------------------------------------------------
    def _locate(self, key: str) -> tuple[int, Any]:
        if not self._ready:
            return INVALID_PARAMS, None
        return self._call("get_replica_list", key)

    def get(self, key: str) -> bytes:
        key = _key(key)
        code, rep = self._locate(key)
        if code != OK:
            return b""
        segment, offset, size = rep
        if size > self._local_buffer_size:
            return b""  # the real client stages a get in its local buffer too
        out = bytearray(size)
        if self._read(segment, offset, memoryview(out)) != OK:
            return b""
        return bytes(out)

    def get_batch(self, keys: list[str]) -> list[bytes]:
        keys = _keys(keys)
        if not self._ready:
            return [b""] * len(keys)
        code, reps = self._call("batch_get_replica_list", list(keys))
        if code != OK:
            return [b""] * len(keys)
        out: list[bytes] = []
        staged = 0  # real: every value of the batch is staged in the local buffer at the same time
        for rep in reps:
            if isinstance(rep, int) or staged + rep[2] > self._local_buffer_size:
                out.append(b"")
                continue
            staged += rep[2]
            buf = bytearray(rep[2])
            out.append(bytes(buf) if self._read(rep[0], rep[1], memoryview(buf)) == OK else b"")
        return out

    def get_into(self, key: str, buffer_ptr: int, size: int) -> int:
        key = _key(key)
        code, rep = self._locate(key)
        if code != OK:
            return code if code != int(ErrorCode.REPLICA_IS_NOT_READY) else int(ErrorCode.OBJECT_NOT_FOUND)
        segment, offset, length = rep
        if size < length:
            return INVALID_PARAMS
        c = self._read(segment, offset, _ptr_view(buffer_ptr, length, writable=True))
        return length if c == OK else c

    def batch_get_into(self, keys: list[str], buffer_ptrs: list[int], sizes: list[int]) -> list[int]:
        return [self.get_into(k, p, s) for k, p, s in zip(keys, buffer_ptrs, sizes, strict=False)]

    def batch_get_into_multi_buffers(
        self,
        keys: list[str],
        all_buffer_ptrs: list[list[int]],
        all_sizes: list[list[int]],
        prefer_alloc_in_same_node: bool = False,
    ) -> list[int]:
        if not (len(keys) == len(all_buffer_ptrs) == len(all_sizes)):
            return [INVALID_PARAMS] * len(keys)
        if not self._ready:
            return [INVALID_PARAMS] * len(keys)
        code, reps = self._call("batch_get_replica_list", list(keys))
        if code != OK:
            return [code] * len(keys)
        out: list[int] = []
        for rep, ptrs, sizes in zip(reps, all_buffer_ptrs, all_sizes, strict=True):
            if isinstance(rep, int):
                out.append(int(ErrorCode.OBJECT_NOT_FOUND) if rep == -703 else rep)
                continue
            segment, offset, length = rep
            if sum(sizes) < length:
                out.append(INVALID_PARAMS)
                continue
            if sum(sizes) > length:
                # real: the slices must add up to the object (transfer_task.cpp, "all_slice_len")
                out.append(int(ErrorCode.TRANSFER_FAIL))
                continue
            data = bytearray(length)
            c = self._read(segment, offset, memoryview(data))
            if c != OK:
                out.append(c)
                continue
            pos = 0
            for p, s in zip(ptrs, sizes, strict=True):
                n = min(s, length - pos)
                if n <= 0:
                    break
                ctypes.memmove(p, bytes(data[pos : pos + n]), n)
                pos += n
            out.append(length)
        return out

    # --- queries -------------------------------------------------------------------------------------------
    def is_exist(self, key: str) -> int:
        key = _key(key)
        if not self._ready:
            return INVALID_PARAMS
        code, res = self._call("exist_key", key)
        return (1 if res else 0) if code == OK else code

    def batch_is_exist(self, keys: list[str]) -> list[int]:
        keys = _keys(keys)
        if not self._ready:
            return [INVALID_PARAMS] * len(keys)
        code, res = self._call("batch_exist_key", list(keys))
        return [int(r) for r in res] if code == OK else [code] * len(keys)

    def get_size(self, key: str) -> int:
        key = _key(key)
        code, rep = self._locate(key)
        if code != OK:
            return code if code != int(ErrorCode.REPLICA_IS_NOT_READY) else int(ErrorCode.OBJECT_NOT_FOUND)
        return int(rep[2])

    def get_replica_desc(self, key: str) -> list[ReplicaDescriptor]:
        key = _key(key)
        code, rep = self._locate(key)
        if code != OK:
            return []
        buf = BufferDescriptor(size=int(rep[2]), buffer_address=int(rep[1]), transport_endpoint=str(rep[0]))
        return [ReplicaDescriptor(MemoryDescriptor(buf))]

    def batch_get_replica_desc(self, keys: list[str]) -> dict[str, list[ReplicaDescriptor]]:
        """Missing keys are left out of the dict, as the real client does."""
        return {k: d for k in _keys(keys) if (d := self.get_replica_desc(k))}

    # --- remove -------------------------------------------------------------------------------------------
    def remove(self, key: str, force: bool = False) -> int:
        key = _key(key)
        if not self._ready:
            return INVALID_PARAMS
        code, _ = self._call("remove", key, bool(force))
        return code

    def batch_remove(self, keys: list[str], force: bool = False) -> list[int]:
        keys = _keys(keys)
        if not self._ready:
            return [INVALID_PARAMS] * len(keys)
        code, res = self._call("batch_remove", list(keys), bool(force))
        return [int(r) for r in res] if code == OK else [code] * len(keys)

    def remove_all(self, force: bool = False) -> int:
        if not self._ready:
            return INVALID_PARAMS
        code, res = self._call("remove_all", bool(force))
        return int(res) if code == OK else code


def _ptr_view(ptr: int, size: int, writable: bool = False) -> memoryview:
    """A view of `size` bytes at address `ptr` (a registered buffer, as the real API takes)."""
    return memoryview((ctypes.c_char * size).from_address(int(ptr))).cast("B")
