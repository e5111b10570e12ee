"""The mock master's state machine: objects, segments, clients, leases, eviction, client TTL.

Metadata only: the bytes live in segments that clients mount. Each method is one RPC of the real
MasterService (mooncake-store/src/master_service.cpp) and returns its result or raises MasterError
with the same ErrorCode. It is driven from one asyncio loop (server.py), so it needs no locks.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from .allocator import OffsetAllocator
from .errors import ErrorCode, MasterError
from .flags import MasterConfig

log = logging.getLogger("mooncake.master")

# A client's segment must be at least this big: the real client refuses smaller ones in setup()
# ("Total size must be at least 16777216", client_buffer_allocation.cpp) and returns -600.
MIN_SEGMENT_SIZE = 16 << 20
EVICTION_PERIOD_S = 0.01  # kEvictionThreadSleepMs
CLIENT_MONITOR_PERIOD_S = 1.0  # kClientMonitorSleepMs


@dataclasses.dataclass
class Segment:
    name: str
    endpoint: str
    size: int
    client_id: str
    alloc: OffsetAllocator


@dataclasses.dataclass
class ObjectMeta:
    key: str
    size: int
    segment: str
    endpoint: str
    offset: int
    complete: bool
    put_start_time: float
    lease_timeout: float = 0.0
    client_id: str = ""


@dataclasses.dataclass
class ClientInfo:
    client_id: str
    last_ping: float
    segments: set[str] = dataclasses.field(default_factory=set)


class MasterService:
    def __init__(
        self,
        cfg: MasterConfig,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = logger or log
        self.clock = clock
        self.rng = random.Random(cfg.seed)
        self.objects: dict[str, ObjectMeta] = {}
        self.segments: dict[str, Segment] = {}
        self.clients: dict[str, ClientInfo] = {}
        self.counters: collections.Counter[str] = collections.Counter()
        self.value_sizes: list[int] = []
        self.need_eviction = False

    # --- bookkeeping -----------------------------------------------------------------------------
    def _count(self, op: str, ok: bool) -> None:
        self.counters[f"master_{op}_requests_total"] += 1
        if not ok:
            self.counters[f"master_{op}_failures_total"] += 1

    def _count_batch(self, op: str, results: list[Any]) -> None:
        failed = sum(1 for r in results if isinstance(r, int) and r < 0)
        c = self.counters
        c[f"master_batch_{op}_requests_total"] += 1
        c[f"master_batch_{op}_items_total"] += len(results)
        c[f"master_batch_{op}_failed_items_total"] += failed
        if results and failed == len(results):
            c[f"master_batch_{op}_failures_total"] += 1
        elif failed:
            c[f"master_batch_{op}_partial_successes_total"] += 1

    def _leased(self, obj: ObjectMeta, now: float) -> bool:
        return obj.lease_timeout > now

    def _grant_lease(self, obj: ObjectMeta) -> None:
        obj.lease_timeout = max(obj.lease_timeout, self.clock() + self.cfg.default_kv_lease_ttl / 1000.0)

    def _free(self, obj: ObjectMeta) -> None:
        seg = self.segments.get(obj.segment)
        if seg is not None:
            seg.alloc.free(obj.offset, obj.size)

    def _drop(self, key: str) -> ObjectMeta:
        obj = self.objects.pop(key)
        self._free(obj)
        return obj

    @property
    def allocated_bytes(self) -> int:
        return sum(s.alloc.allocated for s in self.segments.values())

    @property
    def capacity_bytes(self) -> int:
        return sum(s.size for s in self.segments.values())

    # --- clients and segments ---------------------------------------------------------------------
    def mount_segment(self, client_id: str, name: str, endpoint: str, size: int) -> None:
        now = self.clock()
        client = self.clients.setdefault(client_id, ClientInfo(client_id, now))
        client.last_ping = now
        if size <= 0:
            self._count("mount_segment", False)
            raise MasterError(ErrorCode.INVALID_PARAMS)
        if name in self.segments:
            # real: segment.cpp "segment_name=..., warn=segment_already_exists", mount still OK
            self.log.warning("segment_name=%s, warn=segment_already_exists", name)
            self._count("mount_segment", True)
            return
        self.segments[name] = Segment(name, endpoint, size, client_id, OffsetAllocator(size))
        client.segments.add(name)
        self.log.info("client_id=%s, action=mount_segment, segment_name=%s", client_id, name)
        self._count("mount_segment", True)

    def unmount_segment(self, client_id: str, name: str) -> None:
        seg = self.segments.get(name)
        if seg is None:
            self._count("unmount_segment", False)
            raise MasterError(ErrorCode.SEGMENT_NOT_FOUND)
        self._unmount(seg)
        self._count("unmount_segment", True)

    def _unmount(self, seg: Segment) -> None:
        # Objects whose only replica lived there are gone (real: ClearInvalidHandles).
        for key in [k for k, o in self.objects.items() if o.segment == seg.name]:
            del self.objects[key]
        del self.segments[seg.name]
        client = self.clients.get(seg.client_id)
        if client is not None:
            client.segments.discard(seg.name)
        self.log.info("client_id=%s, action=unmount_segment, segment_name=%s", seg.client_id, seg.name)

    def ping(self, client_id: str) -> str:
        """ "ok", or "need_remount" for a client the master has expired (it then remounts)."""
        self._count("ping", True)
        client = self.clients.get(client_id)
        if client is None:
            return "need_remount"
        client.last_ping = self.clock()
        return "ok"

    def remove_client(self, client_id: str) -> None:
        """A client that closes cleanly unmounts its segments."""
        client = self.clients.pop(client_id, None)
        if client is None:
            return
        for name in list(client.segments):
            seg = self.segments.get(name)
            if seg is not None:
                self._unmount(seg)
                self._count("unmount_segment", True)

    def monitor_tick(self) -> list[str]:
        """Expire clients silent for more than client_ttl (real: ClientMonitorFunc)."""
        now = self.clock()
        expired = [c for c in self.clients.values() if now - c.last_ping > self.cfg.client_ttl]
        for client in expired:
            self.log.info("client_id=%s, action=client_expired", client.client_id)
            del self.clients[client.client_id]
            for name in list(client.segments):
                seg = self.segments.get(name)
                if seg is not None:
                    self._unmount(seg)
        return [c.client_id for c in expired]

    # --- put ------------------------------------------------------------------------------------
    def _allocate(self, size: int) -> Segment | None:
        fits = [s for s in self.segments.values() if s.alloc.largest_free() >= size]
        if not fits:
            return None
        if self.cfg.allocation_strategy == "free_ratio_first":
            return min(fits, key=lambda s: s.alloc.allocated / s.size)
        return self.rng.choice(fits)

    def _put_start(self, client_id: str, key: str, size: int, upsert: bool = False) -> tuple[str, int]:
        now = self.clock()
        if not key or size <= 0:
            self.log.error(
                "key=%s, replica_num=1, slice_length=1, key_size=%d, error=invalid_params", key, size
            )
            raise MasterError(ErrorCode.INVALID_PARAMS)
        old = self.objects.get(key)
        if old is not None:
            stale = not old.complete and now - old.put_start_time > self.cfg.put_start_discard_timeout_sec
            if stale:
                self._drop(key)  # real: an unfinished put past put_start_discard_timeout_sec is discarded
            elif upsert and old.complete and old.size == size:
                # real: an upsert of the same size rewrites the object in place and keeps its lease
                # (a remove right after still gets -706); checked against mooncake 0.3.13.post1
                old.complete = False
                old.put_start_time = now
                self.value_sizes.append(size)
                return old.endpoint, old.offset
            elif upsert and old.complete:
                self._drop(key)  # another size: a new object, without the old lease
            else:
                self.log.info("key=%s, info=object_already_exists", key)
                raise MasterError(ErrorCode.OBJECT_ALREADY_EXISTS)
        seg = self._allocate(size)
        if seg is None:
            self.counters["master_put_start_alloc_failures_total"] += 1
            self.need_eviction = True
            self.log.warning("key=%s, size=%d, error=no_available_handle", key, size)
            raise MasterError(ErrorCode.NO_AVAILABLE_HANDLE)
        offset = seg.alloc.allocate(size)
        assert offset is not None
        self.objects[key] = ObjectMeta(key, size, seg.name, seg.endpoint, offset, False, now, 0.0, client_id)
        self.value_sizes.append(size)
        return seg.endpoint, offset

    def put_start(self, client_id: str, key: str, size: int) -> tuple[str, int]:
        try:
            res = self._put_start(client_id, key, size)
        except MasterError:
            self._count("put_start", False)
            raise
        self._count("put_start", True)
        return res

    def upsert_start(self, client_id: str, key: str, size: int) -> tuple[str, int]:
        # counted as put_start: the real master's put_start counters move on upsert too
        try:
            res = self._put_start(client_id, key, size, upsert=True)
        except MasterError:
            self._count("put_start", False)
            raise
        self._count("put_start", True)
        return res

    def _put_end(self, key: str) -> None:
        obj = self.objects.get(key)
        if obj is None:
            raise MasterError(ErrorCode.OBJECT_NOT_FOUND)
        obj.complete = True

    def put_end(self, key: str) -> None:
        try:
            self._put_end(key)
        except MasterError:
            self._count("put_end", False)
            raise
        self._count("put_end", True)

    def _put_revoke(self, key: str) -> None:
        obj = self.objects.get(key)
        if obj is None:
            raise MasterError(ErrorCode.OBJECT_NOT_FOUND)
        if obj.complete:
            raise MasterError(ErrorCode.INVALID_WRITE)
        self._drop(key)

    def put_revoke(self, key: str) -> None:
        try:
            self._put_revoke(key)
        except MasterError:
            self._count("put_revoke", False)
            raise
        self._count("put_revoke", True)

    def batch_put_start(self, client_id: str, keys: list[str], sizes: list[int]) -> list[Any]:
        out: list[Any] = []
        for key, size in zip(keys, sizes, strict=True):
            try:
                out.append(list(self._put_start(client_id, key, size)))
            except MasterError as e:
                out.append(e.code)
        self._count_batch("put_start", out)
        return out

    def batch_put_end(self, keys: list[str]) -> list[int]:
        out = [self._try(self._put_end, k) for k in keys]
        self._count_batch("put_end", out)
        return out

    def batch_put_revoke(self, keys: list[str]) -> list[int]:
        out = [self._try(self._put_revoke, k) for k in keys]
        self._count_batch("put_revoke", out)
        return out

    @staticmethod
    def _try(fn: Callable[..., object], *args: Any) -> int:
        try:
            fn(*args)
        except MasterError as e:
            return e.code
        return 0

    # --- read -------------------------------------------------------------------------------------
    def _get_replica(self, key: str) -> list[Any]:
        obj = self.objects.get(key)
        if obj is None:
            raise MasterError(ErrorCode.OBJECT_NOT_FOUND)
        if not obj.complete:
            raise MasterError(ErrorCode.REPLICA_IS_NOT_READY)
        self._grant_lease(obj)
        return [obj.endpoint, obj.offset, obj.size]

    def get_replica_list(self, key: str) -> list[Any]:
        try:
            res = self._get_replica(key)
        except MasterError:
            self._count("get_replica_list", False)
            raise
        self._count("get_replica_list", True)
        return res

    def batch_get_replica_list(self, keys: list[str]) -> list[Any]:
        out: list[Any] = []
        for key in keys:
            try:
                out.append(self._get_replica(key))
            except MasterError as e:
                out.append(e.code)
        self._count_batch("get_replica_list", out)
        return out

    def _exist(self, key: str) -> bool:
        obj = self.objects.get(key)
        if obj is None or not obj.complete:
            return False
        self._grant_lease(obj)  # real ExistKey grants a lease too
        return True

    def exist_key(self, key: str) -> bool:
        self._count("exist_key", True)
        return self._exist(key)

    def batch_exist_key(self, keys: list[str]) -> list[int]:
        out = [1 if self._exist(k) else 0 for k in keys]
        self._count_batch("exist_key", out)
        return out

    # --- remove -----------------------------------------------------------------------------------
    def _remove(self, key: str, force: bool) -> None:
        obj = self.objects.get(key)
        if obj is None:
            raise MasterError(ErrorCode.OBJECT_NOT_FOUND)
        if not force and self._leased(obj, self.clock()):
            raise MasterError(ErrorCode.OBJECT_HAS_LEASE)
        if not obj.complete:
            raise MasterError(ErrorCode.REPLICA_IS_NOT_READY)
        self._drop(key)

    def remove(self, key: str, force: bool = False) -> None:
        try:
            self._remove(key, force)
        except MasterError:
            self._count("remove", False)
            raise
        self._count("remove", True)

    def batch_remove(self, keys: list[str], force: bool = False) -> list[int]:
        return [self._try(self.remove, k, force) for k in keys]

    def remove_all(self, force: bool = False) -> int:
        now = self.clock()
        victims = [k for k, o in self.objects.items() if o.complete and (force or not self._leased(o, now))]
        for key in victims:
            self._drop(key)
        self._count("remove_all", True)
        return len(victims)

    # --- eviction ---------------------------------------------------------------------------------
    def used_ratio(self) -> float:
        cap = self.capacity_bytes
        return self.allocated_bytes / cap if cap else 0.0

    def eviction_tick(self) -> int:
        """One pass of the real EvictionThreadFunc: returns how many objects it evicted."""
        used = self.used_ratio()
        hw, ratio = self.cfg.eviction_high_watermark_ratio, self.cfg.eviction_ratio
        if not (used > hw or (self.need_eviction and ratio > 0.0)):
            return 0
        target = max(ratio, used - hw + ratio)
        lowerbound = max(target * 0.5, used - hw)
        return self._batch_evict(target, lowerbound)

    def _batch_evict(self, target: float, lowerbound: float) -> int:
        now = self.clock()
        object_count = len(self.objects)
        # candidates: finished, lease expired (BatchEvict skips leased and unfinished objects)
        cands = sorted(
            (o for o in self.objects.values() if o.complete and not self._leased(o, now)),
            key=lambda o: o.lease_timeout,
        )
        want = math.ceil(object_count * target)
        floor = math.ceil(object_count * lowerbound)
        n = min(len(cands), max(want, floor))
        freed = 0
        for obj in cands[:n]:
            freed += obj.size
            self._drop(obj.key)
        c = self.counters
        c["master_attempted_evictions_total"] += 1
        if n > 0:
            self.need_eviction = False
            c["master_successful_evictions_total"] += 1
            c["master_evicted_key_count"] += n
            c["master_evicted_size_bytes"] += freed
            self.log.info("action=evict_objects, evicted_count=%d, total_freed_size=%d", n, freed)
        elif object_count == 0:
            self.need_eviction = False
        return n

    # --- admin views ------------------------------------------------------------------------------
    def all_keys(self) -> Iterable[str]:
        return list(self.objects)

    def query_key(self, key: str) -> list[dict[str, Any]]:
        obj = self.objects.get(key)
        if obj is None or not obj.complete:
            raise MasterError(ErrorCode.OBJECT_NOT_FOUND)
        return [
            {
                "size_": obj.size,
                "buffer_address_": obj.offset,
                "protocol_": "tcp",
                "transport_endpoint_": obj.endpoint,
            }
        ]
