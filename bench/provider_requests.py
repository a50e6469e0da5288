"""Requests and wall time per lifecycle phase of InfisicalSecretValue, against the Infisical double.

For N keys in K folders it runs create, refresh (read), diff, update and delete through the real
provider (one provider process: one login, cached project id and folders), and in the same run a
naive baseline: the pattern of the seed document's plugin, which logs in for every call, looks the
project up every time, creates every folder of the path every time, and lists a whole folder to
read one key. Each row shows the requests made beside the minimum possible:

    create: N + folders + 1 login (+ 1 project lookup: writes need the project id, which only
            GET /api/v2/workspace/{slug} gives)
    read: N    diff: 0    update: N    delete: N

The double answers each request after ``--latency`` seconds, standing in for the network.

    .venv/bin/python bench/provider_requests.py [--keys 200] [--folders 10] [--latency 0.002]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infisical_sdk import InfisicalSDKClient
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from infisical_double import DoubleServer, InfisicalDouble

from floe_infra.clients.infisical import forget_connections
from floe_infra.clients.transport import RetryPolicy
from floe_infra.deploy.secret_value import InfisicalSecretValueProvider

CLIENT = ("bench-client-id", "bench-client-secret")
PROJECT = "floe-platform"


def props_for(n: int, k: int) -> list[dict[str, Any]]:
    return [
        {
            "project_slug": PROJECT,
            "environment": "dev",
            "path": f"/bench/folder-{i % k:03d}",
            "key": f"KEY_{i:05d}",
            "value": f"value-{i}",
            "comment": "",
            "adopt": False,
        }
        for i in range(n)
    ]


class Naive:
    """The seed plugin's pattern: a fresh client and login per call, whole-folder reads."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _client(self) -> tuple[InfisicalSDKClient, str]:
        client = InfisicalSDKClient(host=self.url, cache_ttl=None)
        client.auth.universal_auth.login(*CLIENT)
        project_id = client.api.get(path=f"/api/v2/workspace/{PROJECT}", model=dict).data["id"]
        return client, project_id

    def create(self, p: dict[str, Any]) -> None:
        client, project_id = self._client()
        parent = "/"
        for name in p["path"].strip("/").split("/"):
            client.folders.create_folder(name=name, environment_slug="dev", project_id=project_id, path=parent)
            parent = f"{parent.rstrip('/')}/{name}"
        client.secrets.create_secret_by_name(
            secret_name=p["key"], secret_path=p["path"], environment_slug="dev", project_id=project_id,
            secret_value=p["value"],
        )  # fmt: skip

    def read(self, p: dict[str, Any]) -> None:
        client = InfisicalSDKClient(host=self.url, cache_ttl=None)
        client.auth.universal_auth.login(*CLIENT)
        listed = client.secrets.list_secrets(environment_slug="dev", secret_path=p["path"], project_slug=PROJECT)
        next(s for s in listed.secrets if s.secretKey == p["key"])

    def update(self, p: dict[str, Any]) -> None:
        client, project_id = self._client()
        client.secrets.update_secret_by_name(
            current_secret_name=p["key"], secret_path=p["path"], environment_slug="dev", project_id=project_id,
            secret_value=p["value"] + "-2",
        )  # fmt: skip

    def delete(self, p: dict[str, Any]) -> None:
        client, project_id = self._client()
        client.secrets.delete_secret_by_name(
            secret_name=p["key"], secret_path=p["path"], environment_slug="dev", project_id=project_id
        )


def _deleted(provider: InfisicalSecretValueProvider, id_: str, props: dict[str, Any]) -> str:
    provider.delete(id_, props)
    return id_


def phases(provider: InfisicalSecretValueProvider, props: list[dict[str, Any]]) -> list[tuple[str, Callable[[], Any]]]:
    ids = [f"id-{i}" for i in range(len(props))]  # the provider reads none: its props say where
    changed = [{**p, "value": p["value"] + "-2"} for p in props]
    return [
        ("create", lambda: [provider.create(dict(p)) for p in props]),
        ("read", lambda: [provider.read(i, dict(p)) for i, p in zip(ids, props, strict=True)]),
        ("diff", lambda: [provider.diff(i, p, c) for i, p, c in zip(ids, props, changed, strict=True)]),
        ("update", lambda: [provider.update(i, p, c) for i, p, c in zip(ids, props, changed, strict=True)]),
        ("delete", lambda: [_deleted(provider, i, c) for i, c in zip(ids, changed, strict=True)]),
    ]


def measure(double: InfisicalDouble, fn: Callable[[], Any]) -> tuple[int, float]:
    before = len(double.requests)
    start = time.perf_counter()
    fn()
    return len(double.requests) - before, time.perf_counter() - start


def fresh_double(latency: float) -> InfisicalDouble:
    double = InfisicalDouble(latency=latency)
    double.add_identity(*CLIENT)
    double.add_project(PROJECT)
    return double


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keys the provider writes (default: 200)")
    parser.add_argument("--folders", type=int, default=10, help="folders they are spread over (default: 10)")
    parser.add_argument(
        "--latency", type=float, default=0.002, help="seconds the double waits per request (default: 0.002)"
    )
    args = parser.parse_args()
    n, k = args.keys, args.folders
    props = props_for(n, k)
    folders = k + 1  # /bench and each /bench/folder-NNN
    minimum = {"create": n + folders + 1, "read": n, "diff": 0, "update": n, "delete": n}

    forget_connections()
    ours: dict[str, tuple[int, float]] = {}
    double = fresh_double(args.latency)
    with DoubleServer(double):
        provider = InfisicalSecretValueProvider(site_url=double.url, policy=RetryPolicy())
        config = {"infisical:clientId": CLIENT[0], "infisical:clientSecret": CLIENT[1]}
        provider.configure(ConfigureRequest(Config(config, "floe")))  # as the engine does, once
        for name, fn in phases(provider, props):
            ours[name] = measure(double, fn)

    naive: dict[str, tuple[int, float]] = {}
    double = fresh_double(args.latency)
    with DoubleServer(double):
        baseline = Naive(double.url)
        steps = {"create": baseline.create, "read": baseline.read, "update": baseline.update, "delete": baseline.delete}
        for name, step in steps.items():
            naive[name] = measure(double, lambda s=step: [s(p) for p in props])  # type: ignore[misc]
        naive["diff"] = (0, 0.0)  # the seed plugin has no diff: it rewrites every secret on every run

    print(f"{n} keys in {k} folders, {args.latency * 1000:.1f} ms per request at the double\n")
    print(
        f"{'phase':<8} {'minimum':>8} {'requests':>9} {'seconds':>8} {'naive req':>10} {'naive s':>8} {'speed-up':>9}"
    )
    for name in ("create", "read", "diff", "update", "delete"):
        (req, sec), (nreq, nsec) = ours[name], naive[name]
        speedup = f"{nsec / sec:.1f}x" if sec > 0 and nsec > 0 else "-"
        print(f"{name:<8} {minimum[name]:>8} {req:>9} {sec:>8.3f} {nreq:>10} {nsec:>8.3f} {speedup:>9}")
    print("\ncreate's minimum counts 1 login and every folder once; ours adds the one project lookup writes need.")


if __name__ == "__main__":
    main()
