"""The desired objects of one stack: plain, frozen data that both front ends consume.

The Pulumi components turn these into resources; ``floe secrets plan`` prints and renders them.
Secret values are never here: a Secret key carries a :class:`SecretSource` that says where the value
comes from, so rendering shows a placeholder and the Pulumi layer fetches the real (secret) value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from ..model.manifest import Generate, Reference
from ..model.settings import StackSettings

SecretsType = Literal["infisical", "k8s"]
PASSWORD_TYPE = "random:index/randomPassword:RandomPassword"
"""The Pulumi type of ``pulumi_random.RandomPassword``, which makes every ``generate:`` value."""
LEGACY_PASSWORD_TYPE = "pulumi-python:dynamic/floe:GeneratedPassword"
"""What made ``generate:`` values before RandomPassword: ``floe secrets upgrade`` moves each into a
RandomPassword of the same name and value."""
MANAGED_BY: Mapping[str, str] = MappingProxyType({"app.kubernetes.io/managed-by": "floe-infra"})
STACK_LABEL = "floe-infra/stack"
LOGIN_ANNOTATION = "floe-infra/login"
"""On the operator's login material (the identity Secret, the auth ServiceAccount, the token
reviewer, v1beta1's InfisicalAuth), whose value is the auth method it serves. Never protected, in a protected stack too:
the stack makes it again from the identity (which stays protected) and the stack config, and a
change of auth method deletes the old method's material, which protect would refuse. The policy
pack exempts what carries it."""


@dataclass(frozen=True)
class SecretSource:
    """Where one Secret value comes from: a stack-config key (and path in it) or a generator."""

    config_key: str | None = None
    config_path: tuple[str, ...] = ()
    generate: Generate | None = None  # made by a RandomPassword with these knobs
    rotation: str | None = None  # the generated value's keeper (floe:rotations): a new mark, a new value
    identity_output: str | None = None  # clientId/clientSecret of the identity the stack manages

    @property
    def placeholder(self) -> str:
        if self.generate is not None:
            rotated = f", rotation {self.rotation}" if self.rotation else ""
            return f"<generated: {self.generate.length} characters{rotated}>"
        if self.identity_output is not None:
            return f"<{self.identity_output} of the managed identity>"
        dotted = ".".join((f"floe:{self.config_key}", *self.config_path))
        return f"<secret from {dotted}>"


class _Desired:
    """What every desired object has: ``id``, by which others name it in ``depends_on``."""

    kind: str

    @property
    def logical_name(self) -> str:
        raise NotImplementedError

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.logical_name}"


@dataclass(frozen=True)
class KubeObject(_Desired):
    """One Kubernetes object; ``content`` is everything beside ``apiVersion``/``kind``/``metadata``."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    labels: Mapping[str, str]
    content: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    secret_data: Mapping[str, SecretSource] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    depends_on: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = False

    @property
    def logical_name(self) -> str:
        """The Pulumi resource name: unique per type, readable in ``pulumi preview``."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def pulumi_type(self) -> str:
        group_version = "core/v1" if self.api_version == "v1" else self.api_version
        return f"kubernetes:{group_version}:{self.kind}"

    def generated(self) -> dict[str, SecretSource]:
        """The keys whose values a RandomPassword makes, by the password's resource name."""
        return {f"{self.logical_name}/{k}": s for k, s in self.secret_data.items() if s.generate is not None}

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name}
        if self.namespace:
            meta["namespace"] = self.namespace
        meta["labels"] = dict(self.labels)
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return meta

    def ref(self) -> dict[str, str]:
        """How another object's spec names this one (a namespaced object)."""
        assert self.namespace is not None
        return {"name": self.name, "namespace": self.namespace}

    def key_ref(self, key: str) -> dict[str, str]:
        """How another object's spec names one key of this Secret."""
        return {**self.ref(), "key": key}

    def manifest(self) -> dict[str, Any]:
        """The object as YAML would show it, secret values replaced by placeholders."""
        obj: dict[str, Any] = {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.metadata()}
        obj.update(self.content)
        if self.secret_data:
            obj["stringData"] = {k: s.placeholder for k, s in self.secret_data.items()}
        return obj


def login_material(obj: KubeObject, method: str) -> KubeObject:
    """``obj`` as the operator's login material for ``method``: unprotected, and marked so that the
    policy pack sees why (:data:`LOGIN_ANNOTATION`)."""
    return replace(obj, protect=False, annotations={**obj.annotations, LOGIN_ANNOTATION: method})


def spec_object(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    spec: dict[str, Any],
    depends_on: tuple[str, ...],
    protect: bool,
    annotations: Mapping[str, str] = MappingProxyType({}),
) -> KubeObject:
    """An object whose content is its ``spec`` (a custom resource)."""
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


def opaque_secret(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    data: dict[str, SecretSource],
    depends_on: tuple[str, ...],
    protect: bool,
) -> KubeObject:
    return KubeObject(
        api_version="v1",
        kind="Secret",
        name=name,
        namespace=namespace,
        labels=labels,
        content={"type": "Opaque"},
        secret_data=data,
        depends_on=depends_on,
        protect=protect,
    )


def namespace_object(name: str, labels: Mapping[str, str], protect: bool) -> KubeObject:
    """Kept in the cluster when the stack stops managing it (its last reference goes, createNamespaces
    turns false, destroy): deleting a namespace deletes every workload in it, not only ours."""
    return KubeObject(
        api_version="v1",
        kind="Namespace",
        name=name,
        namespace=None,
        labels=labels,
        protect=protect,
        retain_on_delete=True,
    )


@dataclass(frozen=True)
class HelmRelease(_Desired):
    """A Helm release (not a Kubernetes object: Helm applies the chart's objects itself)."""

    name: str
    namespace: str
    chart: str
    version: str
    repo: str
    values: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = False
    kind: Literal["Release"] = "Release"

    @property
    def logical_name(self) -> str:
        """The release's name, not its namespace: moving it to another namespace is then a
        replacement of this resource, which deletes the old release first (the two would own the
        same cluster-wide objects), not a new resource created beside the old."""
        return self.name

    @property
    def previous_name(self) -> str:
        """The name stacks made before 2026-11 gave it (an alias)."""
        return f"{self.namespace}/{self.name}"

    pulumi_type = "kubernetes:helm.sh/v3:Release"


@dataclass(frozen=True)
class InfisicalValue(_Desired):
    """One key this stack writes into Infisical (``generate:`` or ``config: true``), so that the
    reference's InfisicalSecret finds it on its first sync. ``site_url`` is the manifest's, which
    the writer uses unless ``infisical:siteUrl`` says otherwise.

    Its Pulumi name is what it manages, ``<path>:<KEY>`` (project and environment are the stack's),
    not the reference's name: renaming a reference keeps every value's URN, so nothing is created
    twice or deleted. A key renamed with ``renamed_from`` keeps its URN through an alias, and the
    provider renames it in place."""

    reference: str
    project_slug: str
    environment: str
    path: str
    key: str
    source: SecretSource
    site_url: str
    adopt: bool = False
    renamed_from: str | None = None
    protect: bool = False
    retain_on_delete: bool = False
    depends_on: tuple[str, ...] = ()
    kind: Literal["SecretValue"] = "SecretValue"

    pulumi_type = "pulumi-python:dynamic/infisical:SecretValue"

    @property
    def logical_name(self) -> str:
        return f"{self.path}:{self.key}"

    @property
    def previous_name(self) -> str | None:
        """The name before a ``renamed_from`` rename (an alias), else None."""
        return f"{self.path}:{self.renamed_from}" if self.renamed_from else None

    def generated(self) -> dict[str, SecretSource]:
        return {self.logical_name: self.source} if self.source.generate is not None else {}


@dataclass(frozen=True)
class ChartCrds(_Desired):
    """A chart's CustomResourceDefinitions, rendered from the chart (``values`` turn them on) and
    applied as resources of their own, while its release installs the rest (with them off).

    Deleting a CRD deletes every object of its kind. Inside the release, a release replacement (a
    namespace change) or an uninstall would delete every InfisicalSecret; here the CRDs are kept on
    delete (``retain_on_delete``) and an upgrade updates them in place. They carry
    ``helm.sh/resource-policy: keep``, which an upgrade honours on the live object: a release that
    held them (stacks made before 2026-11) leaves them in the cluster when it drops them."""

    release: str
    chart: str
    version: str
    repo: str
    values: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = True
    kind: Literal["ChartCRDs"] = "ChartCRDs"

    pulumi_type = "kubernetes:helm.sh/v3:Chart"

    @property
    def logical_name(self) -> str:
        """The release's name: the chart renders labels from it, which must match the release's."""
        return self.release


@dataclass(frozen=True)
class KubernetesLogin:
    """What a managed identity's Kubernetes Auth allows and checks logins with: the ServiceAccount
    that may log in, and the token-reviewer Secret (its token and the cluster's CA) the stack makes;
    ``host``: the API server's URL as Infisical reaches it (None: the kubeconfig's)."""

    namespace: str
    service_account: str
    reviewer_secret: str
    kube_context: str | None
    host: str | None


@dataclass(frozen=True)
class ManagedIdentity(_Desired):
    """The operator's machine identity, made by the stack (``identities: managed``): the identity and
    its membership of the project with ``role``; with universal auth, Universal Auth and one client
    secret, which a new ``rotation`` replaces (the old one is revoked once the operator has logged
    in with the new); with ``kubernetes``, Kubernetes Auth, and no secret at all."""

    name: str
    project_slug: str
    role: str
    site_url: str
    rotation: str
    kubernetes: KubernetesLogin | None = None
    # role "scoped": a project role of the stack's own that reads only ``environment``'s ``paths``
    environment: str = ""
    paths: tuple[str, ...] = ()
    role_slug: str = ""  # the scoped role's slug, before the nonce its create adds
    token_ttl: int = 600
    token_max_ttl: int = 3600
    trusted_ips: tuple[str, ...] = ()
    audience: str | None = None
    protect: bool = False
    retain_on_delete: bool = False
    depends_on: tuple[str, ...] = ()
    kind: Literal["MachineIdentity"] = "MachineIdentity"

    pulumi_type = "pulumi-python:dynamic/infisical:MachineIdentity"
    client_secret_type = "pulumi-python:dynamic/infisical:ClientSecret"
    role_type = "pulumi-python:dynamic/infisical:ProjectRole"
    login_type = "pulumi-python:dynamic/infisical:OperatorLogin"

    @property
    def logical_name(self) -> str:
        return "operator"

    def access(self) -> dict[str, Any]:
        """The identity's token settings, as its provider takes them."""
        return {"ttl": self.token_ttl, "max_ttl": self.token_max_ttl, "trusted_ips": list(self.trusted_ips)}

    def generated(self) -> dict[str, SecretSource]:
        return {}


Desired = KubeObject | HelmRelease | InfisicalValue | ChartCrds | ManagedIdentity


@dataclass(frozen=True)
class OperatorPlan:
    """The Infisical operator install: its namespace (if created), release, and what it logs in
    with: universal auth, the identity Secret (client id and secret); kubernetes auth, the
    ServiceAccount whose tokens it presents (and, for v1beta1, a Secret holding only the identity
    id, which InfisicalAuth reads from a Secret). With operator API v1beta1 its connection and auth
    objects; and External Secrets Operator if installed."""

    namespace: KubeObject | None
    crds: ChartCrds
    release: HelmRelease
    identity: KubeObject | None
    service_account: KubeObject | None = None
    managed_identity: ManagedIdentity | None = None
    token_reviewer: tuple[KubeObject, ...] = ()  # a managed identity's Kubernetes Auth (plan.operator)
    identity_id: str | None = None  # kubernetes auth: the identity the ServiceAccount logs in as
    connection: KubeObject | None = None
    auth: KubeObject | None = None
    eso: HelmRelease | None = None
    eso_crds: ChartCrds | None = None
    eso_namespace: KubeObject | None = None

    def resources(self) -> tuple[Desired, ...]:
        optional = (
            self.namespace,
            self.crds,
            self.release,
            *self.token_reviewer,
            self.managed_identity,
            self.service_account,
            self.identity,
            self.connection,
            self.auth,
        )
        eso = (self.eso_namespace, self.eso_crds, self.eso)
        return tuple(r for r in (*optional, *eso) if r is not None)


@dataclass(frozen=True)
class ReferencePlan:
    """One secret reference: the object that makes its Kubernetes Secret, and what pods use."""

    reference: Reference
    objects: tuple[KubeObject | InfisicalValue, ...]
    output: Mapping[str, Any]


@dataclass(frozen=True)
class StackPlan:
    """Everything one stack would create, in an order where dependencies come first."""

    settings: StackSettings
    secrets_type: SecretsType
    namespaces: tuple[KubeObject, ...]
    operator: OperatorPlan | None
    references: tuple[ReferencePlan, ...]
    warnings: tuple[str, ...] = ()
    over_read_budget: str | None = None  # why the operator would read more than the server allows (a warning too)

    def resources(self) -> tuple[Desired, ...]:
        operator = self.operator.resources() if self.operator else ()
        return operator + self.namespaces + tuple(o for r in self.references for o in r.objects)

    def kube_objects(self) -> tuple[KubeObject, ...]:
        return tuple(r for r in self.resources() if isinstance(r, KubeObject))

    def secret_sources(self) -> Iterator[SecretSource]:
        """Every secret value the stack needs, wherever it goes (Kubernetes or Infisical)."""
        for r in self.resources():
            if isinstance(r, KubeObject):
                yield from r.secret_data.values()
            elif isinstance(r, InfisicalValue):
                yield r.source

    def infisical_values(self) -> tuple[InfisicalValue, ...]:
        return tuple(r for r in self.resources() if isinstance(r, InfisicalValue))

    def outputs(self) -> dict[str, Any]:
        """The stack output ``secrets``: per reference, what a workload needs to consume it."""
        return {r.reference.name: dict(r.output) for r in self.references}
