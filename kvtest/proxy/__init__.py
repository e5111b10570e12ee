"""The P/D proxy: designation / round robin / random / prefix routing over store, nixl and mooncake flows."""

from typing import TYPE_CHECKING, Any

from kvtest.proxy.config import ProxyConfig

if TYPE_CHECKING:
    from kvtest.proxy.server import PDProxy

__all__ = ["PDProxy", "ProxyConfig"]


def __getattr__(name: str) -> Any:
    # PDProxy (aiohttp) loads on first use: the cluster schema imports this package for the strategy
    # and flow registries, and loading a cluster file should not load an HTTP server
    if name == "PDProxy":
        from kvtest.proxy.server import PDProxy

        return PDProxy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
