"""The P/D proxy: designation / round robin / random / prefix routing over store, nixl and mooncake flows."""

from kvtest.proxy.config import ProxyConfig
from kvtest.proxy.server import PDProxy

__all__ = ["PDProxy", "ProxyConfig"]
