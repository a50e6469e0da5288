"""The Kubernetes Auth audience the provider reads from the cluster: the ``aud`` of a TokenRequest
without audiences, and an error that names the permission and the setting when it is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from floe_infra.clients.kube import Cluster
from floe_infra.errors import PluginError


def _cluster(answer: Any) -> Cluster:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.ApiClient(client.Configuration())

    def call_api(*_: Any, **__: Any) -> Any:
        if isinstance(answer, int):
            raise ApiException(status=answer, reason="Forbidden")
        return answer

    api.call_api = call_api
    return Cluster(api, "https://10.0.0.1:6443")


def _token(claims: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.signature"


@pytest.mark.parametrize(
    "aud", [["https://kubernetes.default.svc"], "https://kubernetes.default.svc"], ids=["list", "string"]
)
def test_the_default_audience_is_the_aud_of_a_token_asked_for_with_none(aud: Any) -> None:
    from kubernetes.client import AuthenticationV1TokenRequest, V1TokenRequestStatus

    made = AuthenticationV1TokenRequest(
        status=V1TokenRequestStatus(
            token=_token({"aud": aud, "sub": "system:serviceaccount:infisical:r"}), expiration_timestamp=None
        )
    )
    assert _cluster(made).default_audience("infisical", "r") == "https://kubernetes.default.svc"


def test_a_refused_token_request_names_the_permission_and_the_setting() -> None:
    with pytest.raises(PluginError) as refused:
        _cluster(403).default_audience("infisical", "infisical-token-reviewer")
    message = str(refused.value)
    assert "answered 403 Forbidden to a TokenRequest for ServiceAccount infisical/infisical-token-reviewer" in message
    assert (
        "needs create on serviceaccounts/token in infisical, or set plugins.secrets.config.identity.audience" in message
    )
