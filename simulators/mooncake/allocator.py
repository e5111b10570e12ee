"""First-fit offset allocator for one mounted segment.

The real master's default `--memory_allocator=offset` hands out exact byte ranges (master_allocated_bytes
grows by the value size, no rounding), and a segment's capacity is what the client mounted.
"""

from __future__ import annotations

import bisect


class OffsetAllocator:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.allocated = 0
        self._free: list[tuple[int, int]] = [(0, capacity)] if capacity > 0 else []  # (offset, size)

    def allocate(self, size: int) -> int | None:
        for i, (off, free) in enumerate(self._free):
            if free >= size:
                if free == size:
                    del self._free[i]
                else:
                    self._free[i] = (off + size, free - size)
                self.allocated += size
                return off
        return None

    def largest_free(self) -> int:
        return max((s for _, s in self._free), default=0)

    def free(self, offset: int, size: int) -> None:
        self.allocated -= size
        i = bisect.bisect_left(self._free, (offset, 0))
        self._free.insert(i, (offset, size))
        # merge with the right, then the left neighbour
        if i + 1 < len(self._free) and offset + size == self._free[i + 1][0]:
            self._free[i] = (offset, size + self._free[i + 1][1])
            del self._free[i + 1]
        if i > 0 and self._free[i - 1][0] + self._free[i - 1][1] == offset:
            self._free[i - 1] = (self._free[i - 1][0], self._free[i - 1][1] + self._free[i][1])
            del self._free[i]
