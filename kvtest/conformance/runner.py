"""One conformance run: nodes up, router up, checks in group order, everything stopped."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kvtest.conformance.backends import Backends, start_backends
from kvtest.conformance.check import Check, Context, NotApplicable, Result, checks_in
from kvtest.conformance.flows import FLOWS
from kvtest.conformance.router import RouterProcess, kvtest_proxy_cmd
from kvtest.process import tail


@dataclass
class ConformanceRun:
    router: str  # a short name for tables
    template: str  # --proxy-cmd as given
    flow: str
    groups: list[str]
    command: str = ""  # the filled-in command that ran
    model: str = ""
    ready_s: float = 0.0
    results: list[Result] = field(default_factory=list)
    log_tail: str = ""

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.verdict == "fail"]

    def by_group(self) -> dict[str, tuple[int, int]]:
        """group -> (passed, applicable)."""
        out: dict[str, tuple[int, int]] = {}
        for g in self.groups:
            rs = [r for r in self.results if r.group == g and r.verdict != "n/a"]
            out[g] = (sum(r.verdict == "pass" for r in rs), len(rs))
        return out

    @property
    def kv_moved(self) -> str:
        r = next((r for r in self.results if r.id == "pd.kv_moved"), None)
        return "n/a" if r is None or r.verdict == "n/a" else ("yes" if r.verdict == "pass" else "no")


async def _model(client: httpx.AsyncClient, b: Backends) -> str:
    data = (await client.get(b.prefill.url_for("v1/models"))).json()["data"]
    return str(data[0]["id"])


async def _run_one(c: Check, ctx: Context) -> Result:
    t0 = time.monotonic()
    try:
        # a check bounds each request itself; this only stops one that waits on something else forever
        async with asyncio.timeout(ctx.bound_s * 6):
            detail, verdict = (await c.fn(ctx)) or "", "pass"
    except NotApplicable as e:
        detail, verdict = str(e), "n/a"
    except AssertionError as e:
        detail, verdict = str(e) or "assertion failed", "fail"
    except TimeoutError:
        detail, verdict = f"no answer within {ctx.bound_s * 6:.0f}s", "fail"
    except httpx.TimeoutException:
        detail, verdict = f"no answer within {ctx.bound_s:.0f}s: the router hangs", "fail"
    except httpx.TransportError as e:
        detail, verdict = f"no HTTP answer: the router closed the connection ({type(e).__name__} {e})", "fail"
    except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as e:
        detail, verdict = f"{type(e).__name__}: {e}", "fail"
    return Result(c.group, c.name, c.proves, verdict, detail, time.monotonic() - t0)


async def run_conformance(
    flow: str,
    groups: list[str],
    proxy_cmd: str | None = None,
    *,
    router: str | None = None,
    workdir: Path | None = None,
    bound_s: float = 30.0,
    ready_within_s: float = 120.0,
    cwd: Path | None = None,
    progress: Callable[[Result], None] | None = None,
) -> ConformanceRun:
    """Rate the router `proxy_cmd` (kvtest's own proxy when None) on `flow` with the checks of `groups`.

    Raises ProcessExitedError / ReadyTimeoutError (with the router's log tail) when it does not come up."""
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; known: {', '.join(FLOWS)}")
    spec = FLOWS[flow]
    template = proxy_cmd or kvtest_proxy_cmd(flow)
    run = ConformanceRun(
        router or ("kvtest" if proxy_cmd is None else template.split()[0]), template, flow, groups
    )
    checks = checks_in(groups)
    if spec.connector is None:
        run.results = [Result(c.group, c.name, c.proves, "n/a", spec.why_not, 0.0) for c in checks]
        return run
    workdir = workdir or Path(tempfile.mkdtemp(prefix="kvtest-conformance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    async with start_backends(spec, workdir) as backends:
        proc = RouterProcess(template, backends.placeholders(), workdir / "router.log", cwd)
        run.command = proc.cmd
        try:
            run.ready_s = await proc.start(ready_within_s)
            timeout = httpx.Timeout(bound_s, connect=min(bound_s, 10.0))
            async with httpx.AsyncClient(timeout=timeout) as client:
                run.model = await _model(client, backends)
                ctx = Context(proc.url, backends, client, run.model, bound_s)
                for c in checks:
                    result = await _run_one(c, ctx)
                    run.results.append(result)
                    if progress is not None:
                        progress(result)
        finally:
            proc.stop()
            run.log_tail = tail(proc.log_path, 20)
    return run
