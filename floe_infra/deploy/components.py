"""Pulumi components that wrap a StackPlan in resources, and nothing else.

Every decision (names, specs, dependencies, protection) was made by :mod:`floe_infra.plan`; this
layer only picks the resource class for each desired object and supplies secret values as Pulumi
secrets, so ``pulumi preview`` shows exactly what ``floe secrets plan`` printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..clients.auth import writer_host
from ..plan.desired import (
    PASSWORD_TYPE,
    ChartCrds,
    Desired,
    HelmRelease,
    InfisicalValue,
    KubeObject,
    ManagedIdentity,
    OperatorPlan,
    SecretSource,
    StackPlan,
)
from .identities import LOGIN_WAIT, ClientSecret, MachineIdentity, OperatorLogin, ProjectRole
from .secret_value import InfisicalSecretValue

TYPE_PREFIX = "floe:secrets"
PLATFORM_TYPE = f"{TYPE_PREFIX}:Platform"
# The component each reference had until 2026-11; its former children carry an alias to it.
FORMER_REFERENCE_TYPE = f"{TYPE_PREFIX}:SecretReference"


class SecretValues(Protocol):
    """Supplies the secret value of a config-backed SecretSource (e.g. from pulumi.Config)."""

    def config_value(self, source: SecretSource) -> pulumi.Output[str]: ...

    def writer_host(self, manifest_site_url: str) -> str:
        """Where the writer identity writes: ``infisical:siteUrl``, else ``INFISICAL_HOST``, else
        the manifest's site_url (the provider's own order)."""
        ...


class StackConfigSecrets:
    """SecretValues read from the ``floe`` stack config, decrypted by the engine, kept secret.

    ``missing_as_unknown`` (a preview without secrets): a value that is not set is an unknown
    secret, as a value from a resource not created yet would be, instead of an error.
    """

    def __init__(self, config: pulumi.Config, *, missing_as_unknown: bool = False) -> None:
        self._config = config
        self._missing_as_unknown = missing_as_unknown
        self._objects: dict[str, pulumi.Output[Any]] = {}

    def writer_host(self, manifest_site_url: str) -> str:
        def config(key: str) -> str | None:
            namespace, name = key.split(":", 1)
            return pulumi.Config(namespace).get(name)

        return writer_host(config, manifest_site_url) or manifest_site_url

    def config_value(self, source: SecretSource) -> pulumi.Output[str]:
        assert source.config_key is not None
        if self._missing_as_unknown and not self._is_set(source):
            return _unknown_secret()
        if not source.config_path:
            return self._config.require_secret(source.config_key)
        if source.config_key not in self._objects:
            self._objects[source.config_key] = self._config.require_secret_object(source.config_key)
        path = source.config_path
        return pulumi.Output.secret(self._objects[source.config_key].apply(lambda v: _value_at(v, path)))

    def _is_set(self, source: SecretSource) -> bool:
        assert source.config_key is not None
        if not source.config_path:
            return self._config.get(source.config_key) is not None
        try:
            _value_at(self._config.get_object(source.config_key), source.config_path)
        except (KeyError, TypeError):
            return False
        return True


def _unknown_secret() -> pulumi.Output[str]:
    async def nothing() -> None:
        return None

    async def answer(value: bool) -> bool:
        return value

    return pulumi.Output(set(), nothing(), answer(False), answer(True))  # type: ignore[arg-type]


def _value_at(value: Any, path: tuple[str, ...]) -> str:
    for part in path:
        value = value[part]
    return str(value)


class _Builder:
    """Creates resources for desired objects under one parent, resolving depends_on by id."""

    def __init__(
        self,
        parent: pulumi.Resource,
        values: SecretValues,
        known: Mapping[str, pulumi.Resource],
        cluster: k8s.Provider,
        ready: Mapping[str, pulumi.Output[list[pulumi.Resource]]] | None = None,
    ) -> None:
        self._parent = parent
        self._values = values
        self._cluster = cluster
        self.created: dict[str, pulumi.Resource] = dict(known)
        # A chart's objects, by the chart's id: they register when its render returns, so a
        # dependency on the chart waits for this list, not for the component (empty until then).
        self.ready: dict[str, pulumi.Output[list[pulumi.Resource]]] = dict(ready or {})
        # The identity the stack manages, its client secret, and the host they live on.
        self.managed: tuple[MachineIdentity, ClientSecret | None, str] | None = None
        self._waits: dict[tuple[str, ...], pulumi.Output[list[pulumi.Resource]]] = {}

    def add(self, desired: Desired, former_parent: str | pulumi.Output[str] | None = None) -> pulumi.Resource:
        """``former_parent``: a component the object was once a child of (an alias): its URN, or,
        as a string, the type chain of its URN (``urn:...::Platform$floe:secrets:SecretReference``),
        which makes each alias a plain URN the SDK need not wait for."""
        # One flat method rather than a dispatch to helpers: the SDK records every program frame
        # under each registration, so call depth here is paid a thousand times in a large stack.
        # Each former identity: the old name (a key's renamed_from, a release's namespace/name), the
        # old parent, or both.
        former_name = desired.previous_name if isinstance(desired, (InfisicalValue, HelmRelease)) else None
        previous = _aliases(desired.pulumi_type, desired.logical_name, former_name, former_parent)
        opts = pulumi.ResourceOptions(
            parent=self._parent,
            depends_on=self._depends_on(desired.depends_on),
            protect=desired.protect,
            retain_on_delete=desired.retain_on_delete,
            provider=None if isinstance(desired, (InfisicalValue, ManagedIdentity)) else self._cluster,
            aliases=previous,
        )
        resource: pulumi.Resource
        if isinstance(desired, InfisicalValue):
            source = desired.source
            resource = InfisicalSecretValue(
                desired.logical_name,
                project_slug=desired.project_slug,
                environment=desired.environment,
                path=desired.path,
                key=desired.key,
                value=self._password(
                    desired.logical_name,
                    source,
                    _aliases(PASSWORD_TYPE, desired.logical_name, former_name, former_parent),
                )
                if source.generate is not None
                else self._values.config_value(source),
                opts=opts,
                owner=f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}",
                adopt=desired.adopt,
                site_url=self._values.writer_host(desired.site_url),
                generated=source.generate is not None,
                rotation=source.rotation,
            )
        elif isinstance(desired, ChartCrds):
            chart = k8s.helm.v3.Chart(
                desired.logical_name,
                k8s.helm.v3.ChartOpts(
                    chart=desired.chart,
                    version=desired.version,
                    fetch_opts=k8s.helm.v3.FetchOpts(repo=desired.repo),
                    values=dict(desired.values),
                    transformations=[_only_crds(desired.protect)],
                ),
                opts=opts,
            )
            self.ready[desired.id] = chart.resources.apply(lambda created: list(created.values()))
            resource = chart
        elif isinstance(desired, ManagedIdentity):
            host = self._values.writer_host(desired.site_url)
            login = desired.kubernetes
            own = pulumi.ResourceOptions(parent=self._parent, protect=desired.protect)
            role: pulumi.Input[str] = "viewer"
            if desired.role == "scoped":
                role = ProjectRole(
                    desired.logical_name,
                    project_slug=desired.project_slug,
                    slug=desired.role_slug,
                    environment=desired.environment,
                    paths=list(desired.paths),
                    site_url=host,
                    opts=own,
                ).role_slug
            identity = MachineIdentity(
                desired.logical_name,
                identity_name=desired.name,
                project_slug=desired.project_slug,
                role=role,
                site_url=host,
                access=desired.access(),
                kubernetes={**asdict(login), "audience": desired.audience} if login else None,
                opts=opts,
            )
            # Login material, like the identity Secret (plan.desired.LOGIN_ANNOTATION): never
            # protected, so that a switch to Kubernetes Auth may delete it.
            client_secret = (
                None
                if login
                else ClientSecret(
                    desired.logical_name,
                    identity_id=identity.identity_id,
                    rotation=desired.rotation,
                    site_url=host,
                    opts=pulumi.ResourceOptions(parent=self._parent),
                )
            )
            resource = client_secret or identity
            self.managed = (identity, client_secret, host)
        elif isinstance(desired, HelmRelease):
            resource = k8s.helm.v3.Release(
                desired.logical_name,
                name=desired.name,
                namespace=desired.namespace,
                chart=desired.chart,
                version=desired.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=desired.repo),
                values=dict(desired.values),
                create_namespace=False,
                skip_crds=False,
                # A failed install is purged and a failed upgrade rolled back, with what it created.
                atomic=True,
                cleanup_on_fail=True,
                # A new namespace or name is a new release, whose cluster-wide objects (RBAC) clash
                # with the old one's: the old goes first. Its CRDs are not in it (ChartCrds).
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
            )
        else:
            metadata: dict[str, Any] = {"name": desired.name, "labels": dict(desired.labels)}
            if desired.namespace:
                metadata["namespace"] = desired.namespace
            if desired.annotations:
                metadata["annotations"] = dict(desired.annotations)
            if "spec" not in desired.content:
                content: dict[str, Any] = dict(desired.content)
                if desired.secret_data:
                    content["stringData"] = self._secret_data(desired, former_parent)
                resource = CoreObject(desired.logical_name, desired.kind, metadata, content, opts, desired.api_version)
            else:
                resource = k8s.apiextensions.CustomResource(
                    desired.logical_name,
                    api_version=desired.api_version,
                    kind=desired.kind,
                    metadata=metadata,
                    spec=desired.content["spec"],
                    opts=opts,
                )
        self.created[desired.id] = resource
        return resource

    def _depends_on(self, ids: tuple[str, ...]) -> pulumi.Input[list[pulumi.Resource]]:
        """The resources for ``ids``; a chart's CRDs count once every one of them is created."""
        resources = [self.created[d] for d in ids if d not in self.ready]
        charts = [self.ready[d] for d in ids if d in self.ready]
        if not charts:
            return resources
        # One Output per set of dependencies, shared by the objects that have it: the SDK tracks
        # every Output until the program ends, and a thousand alike cost 2 s of a preview.
        if ids not in self._waits:
            self._waits[ids] = pulumi.Output.all(*charts).apply(
                lambda lists: [*resources, *(r for rs in lists for r in rs)]
            )
        return self._waits[ids]

    def _secret_data(
        self, obj: KubeObject, former_parent: str | pulumi.Output[str] | None
    ) -> dict[str, pulumi.Output[str]]:
        generated = {
            name.rsplit("/", 1)[1]: self._password(name, s, _aliases(PASSWORD_TYPE, name, None, former_parent))
            for name, s in obj.generated().items()
        }
        return {k: generated.get(k) or self._value(s) for k, s in obj.secret_data.items()}

    def _value(self, source: SecretSource) -> pulumi.Output[str]:
        if source.identity_output is None:
            return self._values.config_value(source)
        assert self.managed is not None, "the plan puts the managed identity before its Secret"
        identity, client_secret, _ = self.managed
        if source.identity_output == "clientSecret":
            assert client_secret is not None
            return client_secret.client_secret
        return identity.identity_id if source.identity_output == "identityId" else identity.client_id

    def _password(
        self, name: str, source: SecretSource, aliases: list[str | pulumi.Alias] | None
    ) -> pulumi.Output[str]:
        """A RandomPassword with the manifest's knobs: only those set are sent, so a password that
        ``floe secrets upgrade`` imported (whose state holds random's defaults) shows no change.
        A rotation mark is its one keeper: a new mark, a new value. ``special: false`` is not
        compared until the first rotation, since an import records every value as ``special``.

        Never protected, in a protected stack too: it has nothing outside the state to delete
        (what it made is protected where the stack wrote it), and protect would refuse the replace
        that a rotation is (the policy pack exempts it)."""
        spec = source.generate
        assert spec is not None
        password = random.RandomPassword(
            name,
            length=spec.length,
            special=spec.special,
            min_upper=spec.min_upper or None,
            min_lower=spec.min_lower or None,
            min_numeric=spec.min_numeric or None,
            min_special=spec.min_special or None,
            override_special=spec.override_special,
            keepers={"rotation": source.rotation} if source.rotation else None,
            opts=pulumi.ResourceOptions(
                parent=self._parent,
                aliases=aliases,
                ignore_changes=["special"] if not spec.special and not source.rotation else None,
            ),
        )
        return password.result


class CoreObject(pulumi.CustomResource):
    """A Kubernetes object without a ``spec`` (a core/v1 Namespace, Secret or ServiceAccount, or a
    ClusterRoleBinding), registered as ``kubernetes:<group/version>:<kind>`` with the inputs and
    options its typed class (``pulumi_kubernetes.core.v1.Secret``...) sends. Those classes live in
    modules that build every type's classes on import, a quarter of a second of each preview
    (bench/engine_scale.py); tests/test_program.py holds this class to theirs."""

    def __init__(
        self,
        name: str,
        kind: str,
        metadata: Mapping[str, Any],
        content: Mapping[str, Any],
        opts: pulumi.ResourceOptions,
        api_version: str = "v1",
    ) -> None:
        props: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
        props.update(content)
        if kind == "Secret":
            # As the typed Secret: its data is secret in state whatever the inputs were.
            if "stringData" in content:
                props["stringData"] = pulumi.Output.secret(content["stringData"])
            secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            opts = pulumi.ResourceOptions.merge(opts, secret_outputs)
        group_version = "core/v1" if api_version == "v1" else api_version
        super().__init__(f"kubernetes:{group_version}:{kind}", name, props, opts)


def _aliases(
    kind: str, name: str, former_name: str | None, former_parent: str | pulumi.Output[str] | None
) -> list[str | pulumi.Alias] | None:
    """A resource's former identities: its old name (``former_name``), under its old parent
    (``former_parent``: a component's URN, or as a string the type chain of the component's URN,
    which makes the alias a plain URN that the SDK need not wait for), or both."""
    found: list[str | pulumi.Alias] = [pulumi.Alias(name=former_name)] if former_name else []
    if isinstance(former_parent, str):
        found += [f"{former_parent}${kind}::{n}" for n in (name, former_name) if n]
    elif former_parent is not None:
        found.append(pulumi.Alias(parent=former_parent))
        if former_name:
            found.append(pulumi.Alias(name=former_name, parent=former_parent))
    return found or None


KEEP = {"helm.sh/resource-policy": "keep", "pulumi.com/patchForce": "true"}
"""On the CRDs: Helm keeps them when a release that held them drops them; Pulumi applies them over
the fields that release's Helm (or an earlier stack) still owns."""


def _only_crds(protect: bool) -> Callable[[dict[str, Any], pulumi.ResourceOptions], None]:
    """A Chart transformation: keep the CustomResourceDefinitions, retained on delete and annotated
    with KEEP; every other object of the chart becomes an empty List (the release installs it)."""

    def transform(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        if obj.get("kind") != "CustomResourceDefinition":
            obj.clear()
            obj.update(apiVersion="v1", kind="List")
            return
        metadata = obj.setdefault("metadata", {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **KEEP}
        opts.retain_on_delete = True
        opts.protect = protect

    return transform


@dataclass(frozen=True)
class OperatorArgs:
    plan: OperatorPlan
    values: SecretValues
    cluster: k8s.Provider


class InfisicalOperator(pulumi.ComponentResource):
    """The Infisical Secrets Operator (Helm release) and the identity Secret it reads with."""

    def __init__(self, name: str, args: OperatorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:InfisicalOperator", name, None, opts)
        builder = _Builder(self, args.values, {}, args.cluster)
        for desired in args.plan.resources():
            builder.add(desired)
        self.resources = builder.created
        self.ready = builder.ready
        self.managed = builder.managed
        self.register_outputs(
            {
                "release": args.plan.release.logical_name,
                "identitySecret": args.plan.identity.logical_name if args.plan.identity else None,
                "serviceAccount": args.plan.service_account.logical_name if args.plan.service_account else None,
            }
        )


@dataclass(frozen=True)
class PlatformArgs:
    plan: StackPlan
    values: SecretValues


class SecretsPlatform(pulumi.ComponentResource):
    """All of one stack's secrets management: namespaces, operator and every reference."""

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(PLATFORM_TYPE, name, None, opts)
        plan = args.plan
        # Every Kubernetes object goes through this provider: the cluster is the stack's
        # floe:kubeContext (required when protected), never whatever context happens to be current.
        # enable_secret_mutable: a Secret whose data changes (a rotated client secret, a new value of a
        # type k8s key) is updated in place; the provider's default replaces it, which a protected
        # stack refuses and which leaves a moment without the Secret.
        cluster = k8s.Provider(
            "cluster",
            context=plan.settings.kube_context,
            enable_secret_mutable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        known: dict[str, pulumi.Resource] = {}
        ready: dict[str, pulumi.Output[list[pulumi.Resource]]] = {}
        if plan.operator is not None:
            operator = InfisicalOperator(
                "infisical-operator",
                OperatorArgs(plan.operator, args.values, cluster),
                pulumi.ResourceOptions(parent=self),
            )
            known.update(operator.resources)
            ready.update(operator.ready)
        builder = _Builder(self, args.values, known, cluster, ready)
        for namespace in plan.namespaces:
            builder.add(namespace)
        # A reference's objects are the platform's children, with no component of their own: in a
        # file-backed stack every resource is a state entry and a checkpoint write, and a component
        # per reference doubled both (bench/engine_scale.py). Stacks made before keep their
        # resources through an alias to the component they were under.
        for ref in plan.references:
            former: str | pulumi.Output[str] = (
                # A platform at the top of its stack (the program's): its URN is known now.
                f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{PLATFORM_TYPE}${FORMER_REFERENCE_TYPE}"
                if opts is None or opts.parent is None
                else pulumi.create_urn(ref.reference.name, FORMER_REFERENCE_TYPE, parent=self)
            )
            for obj in ref.objects:
                builder.add(obj, former)
        managed = operator.managed if plan.operator is not None else None
        if managed is not None and managed[1] is not None:
            # On a rotation, the old client secret is revoked (at the end of the `up`) only once the
            # operator has logged in with the new one: after every object that names its Secret.
            identity, client_secret, host = managed[0], managed[1], managed[2]
            users = [
                r
                for d, r in builder.created.items()
                if d.split(":", 1)[0]
                in ("InfisicalConnection", "InfisicalAuth", "InfisicalSecret", "ClusterSecretStore", "ExternalSecret")
            ]
            assert plan.operator is not None and plan.operator.managed_identity is not None
            # A new client secret (a rotation, or a repair after one was revoked by hand) reaches the
            # operator when its cached login ends, at 70% of the token's TTL: the wait covers that.
            ttl = plan.operator.managed_identity.token_ttl
            OperatorLogin(
                "operator",
                identity_id=identity.identity_id,
                client_secret_id=client_secret.secret_id,
                site_url=host,
                wait=LOGIN_WAIT + ttl,
                opts=pulumi.ResourceOptions(parent=self, depends_on=users),  # login material: not protected
            )
        self.outputs = plan.outputs()
        # The outputs are the stack's `secrets` output; not repeated in this component's state.
        self.register_outputs({})
