"""A test double of the Kubernetes API server: Secrets and InfisicalSecrets, on 127.0.0.1.

It serves what the official client asks of a real API server for the day-2 commands: list
(namespaced or cluster-wide, with equality ``labelSelector``), get and create, JSON ``Status``
bodies on errors, bearer-token auth, and a plain-text 404 for the whole
``secrets.infisical.com`` group when the operator's CRD is not installed, as an API server
answers for a group it does not serve. It is a double: it lives in tests/ only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from local_server import JsonHandler, LocalServer

TOKEN = "kube-double-token"
SERVED = {
    "/apis/secrets.infisical.com/v1alpha1": {"infisicalsecrets": "InfisicalSecret"},
    "/apis/secrets.infisical.com/v1beta1": {
        "infisicalstaticsecrets": "InfisicalStaticSecret",
        "infisicalauths": "InfisicalAuth",
    },
    "/apis/external-secrets.io/v1": {"externalsecrets": "ExternalSecret", "clustersecretstores": "ClusterSecretStore"},
    "/api/v1": {"secrets": "Secret"},
}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def _matches(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return all(labels.get(k) == v for k, v in wanted.items())


@dataclass
class KubeDouble:
    """Objects by (plural, namespace, name); ``crd_installed`` toggles the Infisical group."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    crd_installed: bool = True
    eso_installed: bool = True
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, plural: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace", ""), meta["name"])] = obj  # "": cluster-scoped

    def kubeconfig(self, directory: Path, context: str = "double") -> Path:
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "double", "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": "double", "user": "double"}}],
        }))  # fmt: skip
        return path

    def handle(self, method: str, target: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append((method, url.path))
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        prefix = next((p for p in SERVED if url.path.startswith(p + "/")), None)
        if (
            prefix is None
            or (not self.crd_installed and "secrets.infisical.com" in prefix)
            or (not self.eso_installed and "external-secrets.io" in prefix)
        ):
            return 404, "404 page not found\n"
        parts = [p for p in url.path[len(prefix) :].split("/") if p]
        namespace = None
        if parts[:1] == ["namespaces"] and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        plural = parts[0] if parts else ""
        if plural not in SERVED[prefix]:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        kind = SERVED[prefix][plural]
        if len(parts) == 2 and method == "GET":
            obj = self.objects.get((plural, str(namespace), parts[1]))
            if obj is None:
                return 404, _status(404, "NotFound", f'{plural} "{parts[1]}" not found')
            return 200, obj
        if len(parts) == 1 and method == "GET":
            selector = query.get("labelSelector", "")
            items = [
                o for (p, ns, _), o in sorted(self.objects.items(), key=lambda i: i[0])
                if p == plural and (namespace is None or ns == namespace) and _matches(o, selector)
            ]  # fmt: skip
            return 200, {
                "kind": f"{kind}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        if len(parts) == 1 and method == "POST" and namespace is not None:
            name = body["metadata"]["name"]
            if (plural, namespace, name) in self.objects:
                return 409, _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            self.objects[(plural, namespace, name)] = body
            return 201, body
        return 405, _status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


class _Handler(JsonHandler):
    double: KubeDouble

    def _serve(self) -> None:
        status, payload = self.double.handle(self.command, self.path, self.lower_headers(), self.read_json())
        self.answer(status, payload)

    do_GET = do_POST = _serve


class KubeServer(LocalServer):
    """Runs a :class:`KubeDouble` on 127.0.0.1 in a background thread."""

    def __init__(self, double: KubeDouble) -> None:
        super().__init__(double, _Handler)
