"""Requests a failing upstream receives from 4 worker processes during an
outage, with per-process breakers and with breaker state shared through Redis.

    python -m bench.workers        (needs redis-server on PATH and the redis extra)

Loopback only; the upstream, Redis and the workers are all stopped at the end.
"""
from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

import resilient_requests as rr
from resilient_requests.testing import FaultServer, status

WORKERS, OUTAGE, THRESHOLD = 4, 3.0, 5


def _worker(url: str, storage: Optional[str], namespace: str, seconds: float) -> int:
    """Call ``url`` for ``seconds`` like a busy worker; return how many calls it made."""
    config = rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=3, min_wait=0.01, max_wait=0.05),
        circuit_breaker=rr.CircuitBreakerConfig(
            failure_threshold=THRESHOLD, recovery_timeout=1.0, storage=storage, namespace=namespace),
    )
    calls = 0
    with rr.ResilientSession(config) as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            calls += 1
            try:
                session.get(url)
            except rr.CircuitOpenError:
                pass
            time.sleep(0.01)  # a request handler's own work
    return calls


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def outage(storage: Optional[str], namespace: str) -> tuple:
    """(upstream requests, caller calls) over one outage."""
    context = multiprocessing.get_context("spawn")
    with FaultServer() as upstream, ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        upstream.route("/api", status(503))
        futures = [pool.submit(_worker, upstream.url("/api"), storage, namespace, OUTAGE) for _ in range(WORKERS)]
        calls = sum(f.result(timeout=60) for f in futures)
        return upstream.hits("/api"), calls


def overhead(redis_url: str, rounds: int = 15, calls: int = 200) -> dict:
    """Median µs per keep-alive GET (one thread) with local and shared breaker state,
    interleaved round by round."""
    import statistics

    def config(storage: Optional[str], ttl: float) -> rr.ClientConfig:
        return rr.ClientConfig(circuit_breaker=rr.CircuitBreakerConfig(
            storage=storage, state_cache_ttl=ttl, namespace=f"overhead-{ttl}"))

    contenders = {
        "local": config(None, 0.1),
        "Redis, state_cache_ttl=0.1 (default)": config(redis_url, 0.1),
        "Redis, state_cache_ttl=0 (a read per call)": config(redis_url, 0.0),
    }
    times: dict = {name: [] for name in contenders}
    with FaultServer() as upstream:
        sessions = {name: rr.ResilientSession(cfg) for name, cfg in contenders.items()}
        try:
            for _ in range(rounds):
                for name, session in sessions.items():
                    started = time.perf_counter()
                    for _ in range(calls):
                        session.get(upstream.url("/x"))
                    times[name].append((time.perf_counter() - started) / calls * 1e6)
        finally:
            for session in sessions.values():
                session.close()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    """Print the comparison as a Markdown table."""
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server on PATH")
    port = _free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        rows = [("per process (default)", outage(None, "local")),
                ("shared through Redis", outage(f"redis://127.0.0.1:{port}/0", f"bench-{time.time()}"))]
        costs = overhead(f"redis://127.0.0.1:{port}/0")
    finally:
        redis.kill()
        redis.wait()
    print(f"{WORKERS} worker processes, {OUTAGE:g} s outage (every request 503), failure_threshold={THRESHOLD}, "
          "recovery_timeout=1 s, 3 attempts per call")
    print()
    print("| breaker state | requests the upstream received | caller calls | requests per call |")
    print("|---|---|---|---|")
    for label, (hits, calls) in rows:
        print(f"| {label} | {hits} | {calls} | {hits / calls:.3f} |")
    print()
    print("Happy path, one thread, keep-alive GETs (median of interleaved rounds):")
    print()
    print("| breaker state | µs per call | vs local |")
    print("|---|---|---|")
    base = costs["local"]
    for label, micros in costs.items():
        print(f"| {label} | {micros:.0f} | {micros / base:.3f}× |")


if __name__ == "__main__":
    main()
