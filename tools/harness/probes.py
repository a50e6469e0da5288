"""Waiting on the real systems: a probe until it holds, a probe in a thread while a block runs,
and a Deployment's rollout."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from .cluster import LocalCluster

FOLLOW = 45  # seconds a change may take to reach a Secret: the resync interval, plus the operator's backoff
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = FOLLOW) -> tuple[T, float]:
    """The first truthy result of ``probe`` and the seconds it took; fails naming ``what``."""
    start = time.monotonic()
    while True:
        result = probe()
        if result:
            return result, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f}s", pytrace=False)
        time.sleep(0.5)


@contextlib.contextmanager
def polling(probe: Callable[[], T], every: float = 0.2) -> Iterator[list[T]]:
    """``probe()`` every ``every`` seconds in a thread while the block runs (a `pulumi up`, say);
    the list of what each call gave, complete once the block has ended."""
    seen: list[T] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(probe())
            time.sleep(every)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


def rolled_out_in(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The Deployment once its current template runs everywhere (kwok makes the pods Ready)."""
    out = cluster.kubectl("get", "deployment", name, "-n", namespace, "-o", "json", "--ignore-not-found")
    if not out.strip():
        return None
    d: dict[str, Any] = json.loads(out)
    s = d.get("status", {})
    done = (
        s.get("observedGeneration") == d["metadata"]["generation"]
        and s.get("updatedReplicas") == 1
        and s.get("readyReplicas") == 1
        and s.get("replicas") == 1
    )
    return d if done else None
