"""Real and mock services a test or launcher starts: etcd and the Mooncake master."""

from .etcd import EtcdConfig, EtcdServer
from .mooncake_master import MooncakeMaster, mooncake_master_binary

__all__ = ["EtcdConfig", "EtcdServer", "MooncakeMaster", "mooncake_master_binary"]
