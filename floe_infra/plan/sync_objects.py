"""The objects that sync one Infisical folder into one Kubernetes Secret, per mechanism.

Three ways lead to the same Secret (named after the reference, in its namespace): the operator's
``InfisicalStaticSecret`` (v1beta1, the default, with a shared ``InfisicalConnection`` and
``InfisicalAuth``), its older ``InfisicalSecret`` (v1alpha1, with ``operator: {api: v1alpha1}``), or
External Secrets Operator (``via: eso``: a ``ClusterSecretStore`` and an ``ExternalSecret``). Pure
functions, like the rest of the plan.

Switching a reference between them must never leave pods without their Secret, so every sync
object carries ``pulumi.com/deletionPropagationPolicy: orphan``: when Pulumi deletes the old one
(after creating the new one: an update creates before it deletes), Kubernetes keeps the Secret
instead of garbage-collecting it with its owner, and the new syncer updates it in place.
ExternalSecrets create their target with ``creationPolicy: Orphan`` for the same reason; the
operator only sets itself as owner when it creates the Secret, and updates an existing one as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..model import names
from ..model.manifest import InfisicalSettings, Reference
from .desired import ChartCrds, HelmRelease, KubeObject, OperatorPlan, login_material

V1ALPHA1 = "secrets.infisical.com/v1alpha1"
V1BETA1 = "secrets.infisical.com/v1beta1"
ESO_API = "external-secrets.io/v1"
ORPHAN_ON_DELETE: Mapping[str, str] = MappingProxyType({"pulumi.com/deletionPropagationPolicy": "orphan"})
ESO_RELEASE, ESO_CHART = "external-secrets", "external-secrets"
CONNECTION_NAME, AUTH_NAME, KUBERNETES_AUTH_NAME = "infisical", "infisical-universal", "infisical-kubernetes"
IDENTITY_ID_KEY, IDENTITY_ID_SECRET = "identityId", "infisical-identity-id"


@dataclass(frozen=True)
class Scope:
    """Which Infisical folder a sync object reads: project, environment, path."""

    project: str
    environment: str
    path: str


_SCOPE_FIELDS: dict[str, tuple[tuple[str | int, ...], tuple[str, str, str]]] = {
    # kind: (where in its spec, its names for project, environment and path)
    "InfisicalSecret": (("authentication", "*", "secretsScope"), ("projectSlug", "envSlug", "secretsPath")),
    "InfisicalStaticSecret": (("sources", 0), ("projectSlug", "environmentSlug", "secretPath")),
    "ClusterSecretStore": (
        ("provider", "infisical", "secretsScope"),
        ("projectSlug", "environmentSlug", "secretsPath"),
    ),
}


def read_scope(kind: str, spec: Mapping[str, Any]) -> Scope | None:
    """The one reader of the folder a sync object's spec names (each kind spells it its own way),
    for the plan's table and for objects read back from a cluster; None for other kinds. Fields a
    cluster object lacks read as ""."""
    if kind not in _SCOPE_FIELDS:
        return None
    where, fields = _SCOPE_FIELDS[kind]
    node: Any = spec
    for step in where:
        try:
            # "*": the one entry there (InfisicalSecret's universalAuth or kubernetesAuth)
            node = next(iter(node.values())) if step == "*" else node[step]
        except (KeyError, IndexError, TypeError, AttributeError, StopIteration):
            node = {}
            break
    values = [str(node.get(f, "")) if isinstance(node, Mapping) else "" for f in fields]
    return Scope(*values)


def _credential(identity: KubeObject, key: str) -> dict[str, str]:
    assert identity.namespace is not None
    return {"name": identity.name, "namespace": identity.namespace, "key": key}


def _object(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    spec: dict[str, Any],
    depends_on: tuple[str, ...],
    protect: bool,
    annotations: Mapping[str, str] = ORPHAN_ON_DELETE,
) -> KubeObject:
    """A spec-carrying object; sync objects (the default) orphan their Secret when deleted."""
    return KubeObject(
        api_version=api_version,
        kind=kind,
        name=name,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        content={"spec": spec},
        depends_on=depends_on,
        protect=protect,
    )


def _account(service_account: KubeObject) -> dict[str, str]:
    assert service_account.namespace is not None
    return {"name": service_account.name, "namespace": service_account.namespace}


def v1beta1_auth(
    config: InfisicalSettings,
    requires: tuple[str, ...],
    identity: KubeObject,
    labels: Mapping[str, str],
    protect: bool,
    service_account: KubeObject | None = None,
) -> tuple[KubeObject, KubeObject]:
    """The InfisicalConnection and the InfisicalAuth every static secret uses; ``requires``: their
    CRDs and namespace. Universal auth reads client id and secret from ``identity``; kubernetes auth
    (with ``service_account``) reads only the identity id from it, and logs in with a token of
    ``service_account`` that the operator requests for each login."""
    ns = config.operator.namespace
    address = {"address": config.site_url.rstrip("/")}
    connection = _object(V1BETA1, "InfisicalConnection", CONNECTION_NAME, ns, labels, address, requires, protect, {})
    reference = {"infisicalConnectionRef": {"name": CONNECTION_NAME, "namespace": ns}}
    if service_account is None:
        name, deps = AUTH_NAME, (*requires, identity.id, connection.id)
        auth_spec: dict[str, Any] = {
            "method": "universal",
            **reference,
            "universal": {
                "clientIdRef": _credential(identity, "clientId"),
                "clientSecretRef": _credential(identity, "clientSecret"),
            },
        }
    else:
        name, deps = KUBERNETES_AUTH_NAME, (*requires, identity.id, service_account.id, connection.id)
        auth_spec = {
            "method": "kubernetes",
            **reference,
            "kubernetes": {
                "identityIdRef": _credential(identity, IDENTITY_ID_KEY),
                "serviceAccountRef": _account(service_account),
            },
        }
    # Named after its method, so a switch of method replaces it: login material, never protected.
    auth = _object(V1BETA1, "InfisicalAuth", name, ns, labels, auth_spec, deps, False, {})
    return connection, login_material(auth, auth_spec["method"])


def config_identity_id(operator: OperatorPlan) -> str:
    """The identity id a v1alpha1 InfisicalSecret names in its spec (plain: it is no credential)."""
    return operator.identity_id or IDENTITY_ID_PLACEHOLDER


IDENTITY_ID_PLACEHOLDER = "<floe:operatorIdentityId>"


def eso_release(config: InfisicalSettings, depends_on: tuple[str, ...], protect: bool) -> tuple[ChartCrds, HelmRelease]:
    """ESO's CRDs, rendered from its chart and applied as the stack's own resources (kept on delete,
    like the operator's: removing the release must not delete every ESO object), and its release,
    which installs the rest with ``installCRDs: false``."""
    eso = config.eso
    assert eso.chart_version is not None  # the manifest requires it with install: true
    crds = ChartCrds(
        release=ESO_RELEASE,
        chart=ESO_CHART,
        version=eso.chart_version,
        repo=eso.chart_repo,
        values={**eso.values, "installCRDs": True},
        protect=protect,
    )
    release = HelmRelease(
        name=ESO_RELEASE,
        namespace=eso.namespace,
        chart=ESO_CHART,
        version=eso.chart_version,
        repo=eso.chart_repo,
        values={**eso.values, "installCRDs": False},
        depends_on=(*depends_on, crds.id),
        protect=protect,
    )
    return crds, release


def _target(ref: Reference) -> dict[str, str]:
    return {"name": ref.name, "namespace": ref.namespace}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def common_prefix(paths: list[str]) -> str:
    """The deepest folder that holds every one of ``paths`` ("/" at worst)."""
    parts = [p.strip("/").split("/") for p in paths]
    shared = []
    for segments in zip(*parts, strict=False):
        if len(set(segments)) != 1:
            break
        shared.append(segments[0])
    return "/" + "/".join(s for s in shared if s)


def _static_target(ref: Reference, templated: bool) -> dict[str, Any]:
    """A target of an InfisicalStaticSecret: the Secret of ``ref``; ``templated``: holding exactly
    its declared keys, each read from its folder in the fetched tree."""
    target: dict[str, Any] = {"kind": "Secret", **_target(ref), "creationPolicy": "Orphan", "secretType": "Opaque"}
    if templated:
        target["template"] = {
            "engineVersion": "v1",
            "data": {k.name: f'{{{{ (secretFrom "{ref.path}" "{k.name}").Value }}}}' for k in ref.keys},
        }
    return target


def sync_objects(
    ref: Reference,
    config: InfisicalSettings,
    environment: str,
    operator: OperatorPlan,
    labels: Mapping[str, str],
    values: tuple[str, ...],
    stack: str,
    protect: bool,
    targets: tuple[Reference, ...] = (),
) -> tuple[KubeObject, ...]:
    """The objects that fill ``ref``'s Secret, and with v1beta1 those of ``targets`` (references
    of the same folder: one target each); each depends on ``values`` (ids written first)."""
    identity = operator.identity
    if ref.via == "eso":
        assert identity is not None  # the plan refuses via: eso with kubernetes auth
        installed = (operator.eso_crds.id, operator.eso.id) if operator.eso and operator.eso_crds else ()
        store_deps = (identity.id, *installed)
        store = _object(
            ESO_API,
            "ClusterSecretStore",
            names.object_name("floe", stack, ref.name),
            None,
            labels,
            {
                # A ClusterSecretStore serves every namespace unless told otherwise: this one serves
                # only the reference's, so no other namespace can read the folder through it.
                "conditions": [{"namespaces": [ref.namespace]}],
                "provider": {
                    "infisical": {
                        "hostAPI": config.site_url.rstrip("/"),
                        "auth": {
                            "universalAuthCredentials": {
                                "clientId": _credential(identity, "clientId"),
                                "clientSecret": _credential(identity, "clientSecret"),
                            }
                        },
                        "secretsScope": {
                            "projectSlug": config.project_slug,
                            "environmentSlug": environment,
                            "secretsPath": ref.path,
                        },
                    }
                },
            },
            store_deps,
            protect,
        )
        external = _object(
            ESO_API,
            "ExternalSecret",
            ref.name,
            ref.namespace,
            labels,
            {
                "refreshInterval": names.go_duration(config.resync_interval),
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": store.name},
                "target": {"name": ref.name, "creationPolicy": "Orphan", "deletionPolicy": "Retain"},
                "dataFrom": [{"find": {"name": {"regexp": ".*"}}}],
            },
            (store.id, *values),
            protect,
        )
        return store, external
    if config.operator.api == "v1beta1":
        assert operator.auth is not None
        auth = operator.auth
        served = targets or (ref,)
        source: dict[str, Any] = {"projectSlug": config.project_slug, "environmentSlug": environment}
        if config.operator.sources == "prefix":
            # One recursive read of the folders' common prefix; each Secret takes its declared keys
            # from its folder (secretFrom). The server lists only the folders the identity may read.
            source |= {"secretPath": common_prefix([t.path for t in served]), "recursive": True}
        else:
            source["secretPath"] = ref.path
        spec: dict[str, Any] = {
            "infisicalAuthRef": {"name": auth.name, "namespace": auth.namespace},
            "sources": [source],
            "syncOptions": {"refreshInterval": names.go_duration(config.resync_interval)},
            "targets": [_static_target(t, templated=config.operator.sources == "prefix") for t in served],
        }
        deps = (operator.crds.id, auth.id, *values)
        # Shared: named after what it reads, in the operator's namespace, so that references joining
        # or leaving it update it in place (and no team's namespace holds another's targets).
        name, namespace = {
            "reference": (ref.name, ref.namespace),
            # the path's hash too: /data-x and /data/x read alike once made a DNS name
            "folder": (
                names.object_name("floe", stack, ref.path.strip("/"), _digest(ref.path)),
                config.operator.namespace,
            ),
            "prefix": (names.object_name("floe", stack, "all-folders"), config.operator.namespace),
        }[config.operator.sources]
        return (_object(V1BETA1, "InfisicalStaticSecret", name, namespace, labels, spec, deps, protect),)
    scope = {"projectSlug": config.project_slug, "envSlug": environment, "secretsPath": ref.path}
    if operator.service_account is not None:
        login: dict[str, Any] = {
            "kubernetesAuth": {
                "identityId": config_identity_id(operator),
                "serviceAccountRef": _account(operator.service_account),
                # A TokenRequest per login (a Kubernetes 1.24+ ServiceAccount has no token Secret).
                "autoCreateServiceAccountToken": True,
                "secretsScope": scope,
            }
        }
        credentials = operator.service_account
    else:
        assert identity is not None and identity.namespace is not None
        login = {
            "universalAuth": {
                "credentialsRef": {"secretName": identity.name, "secretNamespace": identity.namespace},
                "secretsScope": scope,
            }
        }
        credentials = identity
    spec = {
        "hostAPI": config.host_api,
        "syncConfig": {"resyncInterval": config.resync_interval},
        "authentication": login,
        "managedKubeSecretReferences": [
            {
                "secretName": ref.name,
                "secretNamespace": ref.namespace,
                "creationPolicy": "Orphan",
                "secretType": "Opaque",
            }
        ],
    }
    # creationPolicy Orphan (the CRD's default): the Secret carries no owner reference, so nothing
    # that deletes the InfisicalSecret (a CRD removed with its Helm release, a namespace switch of the
    # release) garbage-collects the Secret that pods read; a new InfisicalSecret resumes syncing it.
    deps = (operator.crds.id, credentials.id, *values)
    return (_object(V1ALPHA1, "InfisicalSecret", ref.name, ref.namespace, labels, spec, deps, protect),)
