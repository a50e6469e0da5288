"""Reading the cluster through the official Kubernetes client, with one-line errors.

Configuration comes the usual way: ``KUBECONFIG`` or ``~/.kube/config`` (``--context`` picks a
context), else the in-cluster service account. Objects come back as plain dicts, as the API sends
them. The client is imported here, on first use, so ``floe --help`` never pays for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .plugin import PluginError

TIMEOUT = (5.0, 20.0)  # connect, read: an unreachable cluster is an error, not a hang


@dataclass
class Cluster:
    """One API connection; ``server`` names it in messages."""

    api: Any
    server: str

    @classmethod
    def connect(cls, context: str | None) -> Cluster:
        import yaml
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        # The client reads KUBECONFIG once, when imported; read it now, as kubectl does.
        named = os.environ.get("KUBECONFIG")
        config_file = named or "~/.kube/config"
        missing = [f for f in (named or "").split(os.pathsep) if f and not os.path.exists(f)]
        if missing:
            raise PluginError(f"KUBECONFIG names {missing[0]}, which does not exist: fix the path or unset KUBECONFIG")
        try:
            config.load_kube_config(config_file=config_file, context=context, client_configuration=configuration)
        except (yaml.YAMLError, TypeError, AttributeError, KeyError, ValueError) as bad:
            detail = " ".join(str(bad).split()) or type(bad).__name__
            raise PluginError(f"{config_file}: not a valid kubeconfig ({detail}): fix it, or point KUBECONFIG at "
                              "another file") from None
        except (ConfigException, OSError) as kube_exc:
            if context is not None:
                raise PluginError(f"cannot use Kubernetes context {context!r}: {kube_exc}") from None
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException:
                raise PluginError(
                    "no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, or run inside a cluster "
                    f"({kube_exc})"
                ) from None
        configuration.retries = 1
        return cls(client.ApiClient(configuration), configuration.host)

    def _call(self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None) -> Any:
        """The decoded JSON answer; None for 404; PluginError for anything else that went wrong."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                response_types_map={200: "object", 201: "object"},
                _return_http_data_only=True,
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise PluginError(
                f"the Kubernetes API at {self.server} answered {exc.status} {exc.reason} to {method} {path}"
            ) from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PluginError(f"cannot reach the Kubernetes API at {self.server}: {reason}") from None

    def list(
        self, group_version: str, plural: str, namespace: str | None, labels: dict[str, str], *, required: bool = True
    ) -> list[dict[str, Any]]:
        """Objects of one kind (``v1``/``secrets`` or ``group/version``/``plural``) with these labels;
        a kind the cluster does not serve is an error if ``required``, else no objects."""
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        scope = f"/namespaces/{namespace}" if namespace else ""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = self._call("GET", f"{prefix}{scope}/{plural}", [("labelSelector", selector)] if selector else None)
        if found is None and not required:
            return []
        if found is None:
            raise PluginError(
                f"the cluster at {self.server} has no {plural} ({group_version}): "
                "is the operator installed? run `pulumi up` for this stack"
            )
        return list(found.get("items") or [])

    def get_secret(self, name: str, namespace: str) -> dict[str, Any] | None:
        found = self._call("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return dict(found) if found is not None else None

    def create_secret(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        if self._call("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body) is None:
            raise PluginError(
                f"could not create Secret {namespace}/{body['metadata']['name']}: no namespace {namespace}"
            )
