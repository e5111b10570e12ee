"""Where a client publishes its segment and looks up other clients' segments (the transfer engine's
metadata): P2PHANDSHAKE (the segment name is its address), the HTTP metadata server
(`http://h:p/metadata`, GET/PUT/DELETE ?key=), or etcd (`etcd://h:p` or bare `h:p`, via etcd's v3 JSON
gateway). Keys follow the real transfer engine: `mooncake/ram/<segment name>`."""

from __future__ import annotations

import base64
import json

import httpx


class MetadataError(RuntimeError):
    pass


class Metadata:
    """P2PHANDSHAKE: nothing is stored; a segment name is `host:port` and that is where it is served."""

    def publish(self, name: str, addr: str) -> None:
        return None

    def resolve(self, name: str) -> str:
        return name

    def remove(self, name: str) -> None:
        return None

    def close(self) -> None:
        return None


class HttpMetadata(Metadata):
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=5.0)

    def publish(self, name: str, addr: str) -> None:
        r = self.http.put(
            self.url, params={"key": f"mooncake/ram/{name}"}, content=json.dumps({"addr": addr})
        )
        if r.status_code != 200:
            raise MetadataError(f"PUT {self.url} -> {r.status_code}")

    def resolve(self, name: str) -> str:
        r = self.http.get(self.url, params={"key": f"mooncake/ram/{name}"})
        if r.status_code != 200:
            raise MetadataError(f"segment {name} not in {self.url} ({r.status_code})")
        return str(r.json()["addr"])

    def remove(self, name: str) -> None:
        self.http.delete(self.url, params={"key": f"mooncake/ram/{name}"})

    def close(self) -> None:
        self.http.close()


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class EtcdMetadata(Metadata):
    def __init__(self, endpoint: str) -> None:
        self.base = f"http://{endpoint}"
        self.http = httpx.Client(timeout=5.0)

    def _post(self, path: str, body: dict[str, str]) -> dict[str, object]:
        try:
            r = self.http.post(self.base + path, json=body)
        except httpx.HTTPError as e:
            raise MetadataError(f"etcd at {self.base}: {e}") from None
        if r.status_code != 200:
            raise MetadataError(f"etcd {path} -> {r.status_code}: {r.text[:200]}")
        return r.json()  # type: ignore[no-any-return]

    def publish(self, name: str, addr: str) -> None:
        self._post(
            "/v3/kv/put", {"key": _b64(f"mooncake/ram/{name}"), "value": _b64(json.dumps({"addr": addr}))}
        )

    def resolve(self, name: str) -> str:
        res = self._post("/v3/kv/range", {"key": _b64(f"mooncake/ram/{name}")})
        kvs = res.get("kvs") or []
        if not kvs:
            raise MetadataError(f"segment {name} not in etcd {self.base}")
        value = base64.b64decode(kvs[0]["value"]).decode()  # type: ignore[index]
        return str(json.loads(value)["addr"])

    def remove(self, name: str) -> None:
        self._post("/v3/kv/deleterange", {"key": _b64(f"mooncake/ram/{name}")})

    def close(self) -> None:
        self.http.close()


def open_metadata(server: str) -> Metadata:
    if server.upper() == "P2PHANDSHAKE":
        return Metadata()
    if server.startswith(("http://", "https://")):
        return HttpMetadata(server)
    if server.startswith("etcd://"):
        return EtcdMetadata(server.removeprefix("etcd://").split(";")[0])
    if ":" in server:
        return EtcdMetadata(server.split(";")[0])
    raise MetadataError(f"unsupported metadata server {server!r}")
