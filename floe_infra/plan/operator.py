"""The whole operator plan of a ``type: infisical`` stack, built in one place: the operator's chart
(its CRDs apart from its release), what it logs in with for each auth method and identity source,
v1beta1's connection and auth objects, and External Secrets Operator when installed. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..model import names
from ..model.manifest import InfisicalSettings
from ..model.settings import StackSettings
from .desired import (
    ChartCrds,
    HelmRelease,
    KubeObject,
    KubernetesLogin,
    ManagedIdentity,
    OperatorPlan,
    SecretSource,
    login_material,
    namespace_object,
    opaque_secret,
    spec_object,
)
from .vocabulary import (
    AUTH_NAME,
    CHART_NAME,
    CONNECTION_NAME,
    ESO_CHART,
    ESO_RELEASE,
    IDENTITY_ID_KEY,
    IDENTITY_ID_SECRET,
    KUBERNETES_AUTH_NAME,
    RELEASE_NAME,
    REVIEWER,
    V1BETA1,
)


def operator_plan(
    config: InfisicalSettings, settings: StackSettings, labels: Mapping[str, str], paths: tuple[str, ...]
) -> OperatorPlan:
    """The operator of one stack; ``paths``: the folders its references read (a managed identity's
    role may read those only)."""
    op = config.operator
    namespace = namespace_object(op.namespace, labels, settings.protect) if settings.create_namespaces else None
    deps = (namespace.id,) if namespace else ()
    crds, release = _chart(
        RELEASE_NAME,
        CHART_NAME,
        op.namespace,
        op.chart_version,
        op.chart_repo,
        {},
        deps,
        settings.protect,
        hostAPI=config.host_api,
    )
    if op.auth == "kubernetes":
        identity, service_account, managed, reviewer = _kubernetes_login(config, settings, labels, paths, deps)
    else:
        service_account, reviewer = None, ()
        identity, managed = _universal_login(config, settings, labels, paths, deps)
    connection = auth = None
    if op.api == "v1beta1":
        assert identity is not None
        connection, auth = _v1beta1_auth(config, (crds.id, *deps), identity, labels, settings.protect, service_account)
    eso_namespace = eso_crds = eso = None
    if config.eso.install:  # kept while install is true, used or not: see docs, leaving ESO
        if settings.create_namespaces:
            eso_namespace = namespace_object(config.eso.namespace, labels, settings.protect)
        eso_crds, eso = _eso_release(config, (eso_namespace.id,) if eso_namespace else (), settings.protect)
    return OperatorPlan(
        namespace=namespace,
        crds=crds,
        release=release,
        identity=identity,
        service_account=service_account,
        identity_id=settings.operator_identity_id if service_account else None,
        managed_identity=managed,
        token_reviewer=reviewer,
        connection=connection,
        auth=auth,
        eso=eso,
        eso_crds=eso_crds,
        eso_namespace=eso_namespace,
    )


def _kubernetes_login(
    config: InfisicalSettings,
    settings: StackSettings,
    labels: Mapping[str, str],
    paths: tuple[str, ...],
    deps: tuple[str, ...],
) -> tuple[KubeObject | None, KubeObject, ManagedIdentity | None, tuple[KubeObject, ...]]:
    """Kubernetes Auth: the ServiceAccount whose tokens the operator presents, the Secret holding
    the identity id (v1beta1's InfisicalAuth reads it from a Secret; v1alpha1 names it in its spec),
    and with ``identities: managed`` the identity and its token reviewer."""
    op = config.operator
    # An existing ServiceAccount named in operator.service_account is taken over by the create
    # (pulumi-kubernetes 4.25 upserts): a switch of method must not delete what others may use.
    service_account = login_material(
        KubeObject(
            api_version="v1",
            kind="ServiceAccount",
            name=op.auth_service_account,
            namespace=op.namespace,
            labels=labels,
            depends_on=deps,
            retain_on_delete=op.service_account is not None,
        ),
        op.auth,
    )
    id_source, id_deps = SecretSource(config_key="operatorIdentityId"), deps
    managed: ManagedIdentity | None = None
    reviewer: tuple[KubeObject, ...] = ()
    if config.identities == "managed":
        reviewer = _token_reviewer(op.namespace, labels, settings, deps)
        login = KubernetesLogin(
            namespace=op.namespace,
            service_account=op.auth_service_account,
            reviewer_secret=REVIEWER,
            kube_context=settings.kube_context,
            host=settings.kubernetes_host,
        )
        managed = _managed_identity(config, settings, paths, "", login, tuple(r.id for r in reviewer))
        id_source, id_deps = SecretSource(identity_output="identityId"), (*deps, managed.id)
    identity = None
    if op.api == "v1beta1":
        secret = opaque_secret(IDENTITY_ID_SECRET, op.namespace, labels, {IDENTITY_ID_KEY: id_source}, id_deps, False)
        identity = login_material(secret, op.auth)
    return identity, service_account, managed, reviewer


def _universal_login(
    config: InfisicalSettings,
    settings: StackSettings,
    labels: Mapping[str, str],
    paths: tuple[str, ...],
    deps: tuple[str, ...],
) -> tuple[KubeObject, ManagedIdentity | None]:
    """Universal Auth: the identity Secret (client id and secret), from stack config or from the
    identity the stack manages."""
    op = config.operator
    if config.identities != "managed":
        data = {
            "clientId": SecretSource(config_key="operatorClientId"),
            "clientSecret": SecretSource(config_key="operatorClientSecret"),
        }
        secret = opaque_secret(config.identity_secret, op.namespace, labels, data, deps, False)
        return login_material(secret, op.auth), None
    rotation = settings.operator_secret_rotation or ""
    managed = _managed_identity(config, settings, paths, rotation)
    # v1beta1: a rotation changes the Secret's data in place (an update, which a protected stack
    # allows), and nothing else: the operator keeps a login for 70% of its token's TTL and then
    # logs in again with what the Secret holds, which OperatorLogin waits for. No object the
    # operator reads changes shape, so no moment, and no interrupted `up`, leaves it without a
    # valid reference. v1alpha1 keeps a login for the life of its spec: there a rotation renames
    # the Secret the InfisicalSecrets name, which changes their spec.
    renamed = rotation and op.api == "v1alpha1"
    data = {
        "clientId": SecretSource(identity_output="clientId"),
        "clientSecret": SecretSource(identity_output="clientSecret"),
    }
    name = f"{config.identity_secret}-{rotation}" if renamed else config.identity_secret
    secret = opaque_secret(name, op.namespace, labels, data, (*deps, managed.id), False)
    return login_material(secret, op.auth), managed


def _managed_identity(
    config: InfisicalSettings,
    settings: StackSettings,
    paths: tuple[str, ...],
    rotation: str,
    kubernetes: KubernetesLogin | None = None,
    depends_on: tuple[str, ...] = (),
) -> ManagedIdentity:
    """The operator's identity the stack makes: a reader of the stack's environment and the
    manifest's folders (or the whole project's viewer, if the manifest opts in), with short-lived
    access tokens."""
    managed = config.managed
    return ManagedIdentity(
        name=f"floe-{config.project_slug}-{settings.stack}-operator",
        project_slug=config.project_slug,
        role=managed.role,
        site_url=config.site_url,
        rotation=rotation,
        protect=settings.protect,
        kubernetes=kubernetes,
        environment=settings.environment,
        paths=paths,
        role_slug=role_slug(settings.stack),
        token_ttl=names.interval_seconds(managed.token_ttl),
        token_max_ttl=names.interval_seconds(managed.token_max_ttl),
        trusted_ips=tuple(managed.trusted_ips),
        audience=managed.audience,
        depends_on=depends_on,
    )


def role_slug(stack: str) -> str:
    """``floe-<stack>-reader``, as an Infisical slug (lowercase letters, digits, single '-')."""
    words = re.sub(r"[^a-z0-9]+", "-", stack.lower()).strip("-")
    return f"floe-{words[:24].strip('-')}-reader"


def _token_reviewer(
    namespace: str, labels: Mapping[str, str], settings: StackSettings, deps: tuple[str, ...]
) -> tuple[KubeObject, ...]:
    """What a managed identity's Kubernetes Auth checks logins with: a ServiceAccount that may call
    TokenReview (``system:auth-delegator``) and a token Secret of it, which the cluster fills with
    its token and CA; the identity's provider reads both from the cluster, nobody copies them.
    Login material (:func:`login_material`), never protected."""
    account = KubeObject(
        api_version="v1", kind="ServiceAccount", name=REVIEWER, namespace=namespace, labels=labels, depends_on=deps
    )
    token = KubeObject(
        api_version="v1",
        kind="Secret",
        name=REVIEWER,
        namespace=namespace,
        labels=labels,
        annotations={"kubernetes.io/service-account.name": REVIEWER},
        content={"type": "kubernetes.io/service-account-token"},
        depends_on=(account.id,),
    )
    binding = KubeObject(
        api_version="rbac.authorization.k8s.io/v1",
        kind="ClusterRoleBinding",
        name=f"floe-{settings.stack}-{namespace}-{REVIEWER}",
        namespace=None,
        labels=labels,
        content={
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": REVIEWER, "namespace": namespace}],
        },
        depends_on=(account.id,),
    )
    return tuple(login_material(o, "kubernetes") for o in (account, token, binding))


def _v1beta1_auth(
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
    kind = "InfisicalConnection"
    connection = spec_object(V1BETA1, kind, CONNECTION_NAME, ns, labels, address, requires, protect)
    reference = {"infisicalConnectionRef": {"name": CONNECTION_NAME, "namespace": ns}}
    if service_account is None:
        name, deps = AUTH_NAME, (*requires, identity.id, connection.id)
        auth_spec: dict[str, Any] = {
            "method": "universal",
            **reference,
            "universal": {
                "clientIdRef": identity.key_ref("clientId"),
                "clientSecretRef": identity.key_ref("clientSecret"),
            },
        }
    else:
        name, deps = KUBERNETES_AUTH_NAME, (*requires, identity.id, service_account.id, connection.id)
        auth_spec = {
            "method": "kubernetes",
            **reference,
            "kubernetes": {
                "identityIdRef": identity.key_ref(IDENTITY_ID_KEY),
                "serviceAccountRef": service_account.ref(),
            },
        }
    # Named after its method, so a switch of method replaces it: login material, never protected.
    auth = spec_object(V1BETA1, "InfisicalAuth", name, ns, labels, auth_spec, deps, False)
    return connection, login_material(auth, auth_spec["method"])


def _eso_release(
    config: InfisicalSettings, depends_on: tuple[str, ...], protect: bool
) -> tuple[ChartCrds, HelmRelease]:
    eso = config.eso
    assert eso.chart_version is not None  # the manifest requires it with install: true
    return _chart(
        ESO_RELEASE, ESO_CHART, eso.namespace, eso.chart_version, eso.chart_repo, eso.values, depends_on, protect
    )


def _chart(
    name: str,
    chart: str,
    namespace: str,
    version: str,
    repo: str,
    values: Mapping[str, Any],
    depends_on: tuple[str, ...],
    protect: bool,
    **release_only: Any,
) -> tuple[ChartCrds, HelmRelease]:
    """A chart's CRDs, rendered from it and applied as the stack's own resources (kept on delete:
    removing the release must not delete every object of those kinds), and its release, which
    installs the rest with ``installCRDs: false`` (and ``release_only``'s values)."""
    crds = ChartCrds(
        release=name,
        chart=chart,
        version=version,
        repo=repo,
        values={**values, "installCRDs": True},
        protect=protect,
    )
    release = HelmRelease(
        name=name,
        namespace=namespace,
        chart=chart,
        version=version,
        repo=repo,
        values={**values, "installCRDs": False, **release_only},
        depends_on=(*depends_on, crds.id),
        protect=protect,
    )
    return crds, release
