"""Reading the cluster through the official Kubernetes client, with one-line errors.

Configuration comes the usual way: ``KUBECONFIG`` or ``~/.kube/config`` (``--context`` picks a
context), else the in-cluster service account. Objects come back as plain dicts, as the API sends
them. The client is imported here, on first use, so ``floe --help`` never pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PluginError

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
            raise PluginError(
                f"{config_file}: not a valid kubeconfig ({detail}): fix it, or point KUBECONFIG at another file"
            ) from None
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

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()``'s answer as the API sent it (plain JSON types); None for 404; PluginError for
        anything else that went wrong."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            answer = fn()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise PluginError(
                f"the Kubernetes API at {self.server} answered {exc.status} {exc.reason} to {what}"
            ) from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PluginError(f"cannot reach the Kubernetes API at {self.server}: {reason}") from None
        return self.api.sanitize_for_serialization(answer)

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded; None when there is no such Secret."""
        import base64

        from kubernetes.client import CoreV1Api

        core = CoreV1Api(self.api)
        found = self._call(
            f"a read of Secret {namespace}/{name}",
            lambda: core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT),
        )
        if found is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}

    def default_audience(self, namespace: str, service_account: str) -> str:
        """The audience the API server gives a token asked for with none (TokenRequest without
        audiences, as the operator asks): its ``--api-audiences``, by default its service-account
        issuer; read from the ``aud`` of such a token of ``service_account``, which is then dropped."""
        import base64
        import json

        from kubernetes.client import AuthenticationV1TokenRequest as Request
        from kubernetes.client import CoreV1Api, V1TokenRequestSpec

        core = CoreV1Api(self.api)
        where = f"{namespace}/{service_account}"
        request = Request(spec=V1TokenRequestSpec(audiences=[], expiration_seconds=600))
        try:
            made = self._call(
                f"a TokenRequest for ServiceAccount {where}",
                lambda: core.create_namespaced_service_account_token(
                    service_account, namespace, request, _request_timeout=TIMEOUT
                ),
            )
        except PluginError as exc:
            raise PluginError(
                f"{exc}: the kubeconfig's user needs create on serviceaccounts/token in {namespace}, "
                "or set plugins.secrets.config.identity.audience"
            ) from None
        token = str(((made or {}).get("status") or {}).get("token") or "")
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            return str(audiences[0])
        except (IndexError, KeyError, ValueError, TypeError):
            raise PluginError(
                f"the Kubernetes API at {self.server} gave no token with an audience for "
                f"ServiceAccount {where}: set plugins.secrets.config.identity.audience"
            ) from None

    def list(
        self,
        group_version: str,
        plural: str,
        namespace: str | None,
        labels: Mapping[str, str],
        *,
        required: bool = True,
    ) -> list[dict[str, Any]]:
        """Objects of one kind (``v1``/``secrets`` or ``group/version``/``plural``) with these labels;
        a kind the cluster does not serve is an error if ``required``, else no objects."""
        from kubernetes.client import CoreV1Api, CustomObjectsApi

        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        options = {"label_selector": selector, "_request_timeout": TIMEOUT}
        what = f"a list of {plural} ({group_version})"
        found: Any
        if group_version == "v1" and plural == "secrets":
            core = CoreV1Api(self.api)
            found = self._call(
                what,
                lambda: (
                    core.list_namespaced_secret(namespace, **options)
                    if namespace
                    else core.list_secret_for_all_namespaces(**options)
                ),
            )
        else:
            group, version = group_version.split("/")
            custom = CustomObjectsApi(self.api)
            found = self._call(
                what,
                lambda: (
                    custom.list_namespaced_custom_object(group, version, namespace, plural, **options)
                    if namespace
                    else custom.list_cluster_custom_object(group, version, plural, **options)
                ),
            )
        if found is None and not required:
            return []
        if found is None:
            raise PluginError(
                f"the cluster at {self.server} has no {plural} ({group_version}): "
                "is the operator installed? run `pulumi up` for this stack"
            )
        return list(found.get("items") or [])

    def get_secret(self, name: str, namespace: str) -> dict[str, Any] | None:
        from kubernetes.client import CoreV1Api

        core = CoreV1Api(self.api)
        found = self._call(
            f"a read of Secret {namespace}/{name}",
            lambda: core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT),
        )
        return dict(found) if found is not None else None
