"""The objects of each secret reference: the values the stack writes into Infisical, and the objects
that sync one Infisical folder into one Kubernetes Secret, per mechanism (or, for ``type: k8s``,
the Secret itself).

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
from dataclasses import replace
from functools import partial
from typing import Any

from ..model import names
from ..model.manifest import InfisicalSettings, KeyDecl, Reference
from ..model.settings import StackSettings
from .desired import InfisicalValue, KubeObject, OperatorPlan, ReferencePlan, SecretSource, opaque_secret, spec_object
from .vocabulary import (
    AUTO_RELOAD_ANNOTATION,
    ESO_API,
    IDENTITY_ID_PLACEHOLDER,
    ORPHAN_ON_DELETE,
    V1ALPHA1,
    V1BETA1,
)

_sync_object = partial(spec_object, annotations=ORPHAN_ON_DELETE)
"""A sync object: deleting it orphans the Secret it fills."""


def shared_objects(config: InfisicalSettings, references: tuple[Reference, ...]) -> dict[str, tuple[Reference, ...]]:
    """Which references each sync object serves, by the name of the reference whose plan holds it.

    ``operator.sources: folder``: references that read the same folder share one
    InfisicalStaticSecret, with one target per reference (the operator reads a folder once per
    refresh however many Secrets it fills); ``prefix``: one object serves every reference of the
    operator. The shared object is named after what it reads, in the operator's namespace, so a
    reference joining or leaving it updates it in place. The plan of the first reference (by
    name) holds it; the others get ``()``. ``reference`` (the default), v1alpha1 and ESO: one
    object per reference."""
    sources = config.operator.sources
    if config.operator.api != "v1beta1" or sources == "reference":
        return {}
    by_folder: dict[str, list[Reference]] = {}
    for ref in sorted(references, key=lambda r: r.name):
        if ref.via == "operator":
            by_folder.setdefault("" if sources == "prefix" else ref.path, []).append(ref)
    groups: dict[str, tuple[Reference, ...]] = {}
    for members in by_folder.values():
        groups[members[0].name] = tuple(members)
        groups.update((m.name, ()) for m in members[1:])
    return groups


def written_values(ref: Reference, config: InfisicalSettings, settings: StackSettings) -> tuple[InfisicalValue, ...]:
    return tuple(
        InfisicalValue(
            reference=ref.name,
            project_slug=config.project_slug,
            environment=settings.environment,
            path=ref.path,
            key=k.name,
            source=_key_source(ref, k, settings),
            site_url=config.site_url,
            adopt=k.adopt,
            renamed_from=k.renamed_from,
            protect=settings.protect,
        )
        for k in ref.keys
        if k.source != "manual"
    )


def infisical_reference(
    ref: Reference,
    config: InfisicalSettings,
    settings: StackSettings,
    labels: Mapping[str, str],
    operator: OperatorPlan | None,
    values: Mapping[str, tuple[InfisicalValue, ...]],
    serves: tuple[Reference, ...],
) -> ReferencePlan:
    """``serves``: the references whose Secrets this reference's sync object fills (itself, or a
    folder's references: :func:`shared_objects`); empty when another reference's object fills it."""
    assert operator is not None
    # The values first, so the first sync already finds them (every value of the folder it reads).
    objects = (
        sync_objects(
            ref,
            config,
            settings.environment,
            operator,
            labels,
            tuple(v.id for member in serves for v in values[member.name]),
            settings.stack,
            settings.protect,
            targets=serves,
        )
        if serves
        else ()
    )
    output = _output(ref)
    if ref.auto_reload and ref.via == "operator":  # only the Infisical operator acts on it
        output["workloadAnnotations"] = {AUTO_RELOAD_ANNOTATION: "true"}
    plan = ReferencePlan(reference=ref, objects=(*values[ref.name], *objects), output=output)
    return _waiting_for_namespaces(plan, settings)


def _key_source(ref: Reference, key: KeyDecl, settings: StackSettings) -> SecretSource:
    if key.generate is not None:
        return SecretSource(generate=key.generate, rotation=settings.rotations.get(ref.name, {}).get(key.name))
    return SecretSource(config_key="secretValues", config_path=(ref.name, key.name))


def k8s_reference(ref: Reference, settings: StackSettings, labels: Mapping[str, str]) -> ReferencePlan:
    sources = {k.name: _key_source(ref, k, settings) for k in ref.keys}
    configured = (settings.secret_value_keys or {}).get(ref.name, frozenset())
    for key in sorted(configured - set(sources)):
        sources[key] = SecretSource(config_key="secretValues", config_path=(ref.name, key))
    secret = opaque_secret(ref.name, ref.namespace, labels, dict(sorted(sources.items())), (), settings.protect)
    return _waiting_for_namespaces(ReferencePlan(reference=ref, objects=(secret,), output=_output(ref)), settings)


def _waiting_for_namespaces(plan: ReferencePlan, settings: StackSettings) -> ReferencePlan:
    """With ``floe:createNamespaces``, objects in the reference's namespace wait for it; an
    InfisicalStaticSecret also waits for the namespace of each Secret it fills (a shared one lives
    in the operator's namespace)."""
    if not settings.create_namespaces:
        return plan
    ns = plan.reference.namespace

    def spaces(o: KubeObject) -> list[str]:
        targets = o.content.get("spec", {}).get("targets", []) if o.kind == "InfisicalStaticSecret" else []
        own = [ns] if o.namespace == ns else []
        return [*own, *sorted({t["namespace"] for t in targets} - set(own))]

    objects = tuple(
        replace(o, depends_on=(*(f"Namespace:{n}" for n in spaces(o)), *o.depends_on))
        if isinstance(o, KubeObject) and spaces(o)
        else o
        for o in plan.objects
    )
    return replace(plan, objects=objects)


def _output(ref: Reference) -> dict[str, Any]:
    return {
        "secretName": ref.name,
        "namespace": ref.namespace,
        "podSpec": {"envFrom": [{"secretRef": {"name": ref.name}}]},
    }


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
        store = _sync_object(
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
                                "clientId": identity.key_ref("clientId"),
                                "clientSecret": identity.key_ref("clientSecret"),
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
        external = _sync_object(
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
        return (_sync_object(V1BETA1, "InfisicalStaticSecret", name, namespace, labels, spec, deps, protect),)
    scope = {"projectSlug": config.project_slug, "envSlug": environment, "secretsPath": ref.path}
    if operator.service_account is not None:
        login: dict[str, Any] = {
            "kubernetesAuth": {
                "identityId": operator.identity_id or IDENTITY_ID_PLACEHOLDER,
                "serviceAccountRef": operator.service_account.ref(),
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
    return (_sync_object(V1ALPHA1, "InfisicalSecret", ref.name, ref.namespace, labels, spec, deps, protect),)
