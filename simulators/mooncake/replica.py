"""What get_replica_desc / batch_get_replica_desc return: the shapes of mooncake.store's
ReplicaDescriptor -> MemoryDescriptor -> buffer_descriptor (size, buffer_address, transport_endpoint)."""

from __future__ import annotations

import dataclasses
import enum


class ReplicaStatus(enum.Enum):
    UNDEFINED = 0
    INITIALIZED = 1
    PROCESSING = 2
    COMPLETE = 3
    REMOVED = 4
    FAILED = 5


@dataclasses.dataclass(frozen=True)
class BufferDescriptor:
    size: int
    buffer_address: int  # the mock: an offset inside the owner's segment, not a virtual address
    transport_endpoint: str

    def __repr__(self) -> str:
        return (
            f"<Descriptor size={self.size} buffer_address={self.buffer_address} "
            f"transport_endpoint={self.transport_endpoint}>"
        )


@dataclasses.dataclass(frozen=True)
class MemoryDescriptor:
    buffer_descriptor: BufferDescriptor


@dataclasses.dataclass(frozen=True)
class ReplicaDescriptor:
    memory: MemoryDescriptor
    status: ReplicaStatus = ReplicaStatus.COMPLETE

    def is_memory_replica(self) -> bool:
        return True

    def is_disk_replica(self) -> bool:
        return False

    def is_local_disk_replica(self) -> bool:
        return False

    def get_memory_descriptor(self) -> MemoryDescriptor:
        return self.memory

    def get_disk_descriptor(self) -> object:
        raise RuntimeError("Expected DiskDescriptor")  # as the real binding says for a memory replica
