"""Shared fixtures: the one recording Pulumi mocks fixture, and manifest/stack helpers.

The recording monitor keeps what a real engine would receive for every registration (type, name,
parent, dependencies, protect, secret inputs), which Pulumi's ``Mocks.new_resource`` alone hides.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from infisical_double import DoubleServer, InfisicalDouble, Project
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config as DynamicConfig
from pulumi.runtime import mocks, rpc

from floe_infra.clients.infisical import forget_connections
from floe_infra.clients.transport import RetryPolicy
from floe_infra.model.settings import SECRET_KEYS, WRITER_ENV
from floe_infra.plan.desired import PASSWORD_TYPE
from floe_infra.secret_value import InfisicalSecretValueProvider

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"
ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = rpc._special_secret_sig


# One InfisicalSecretValue's inputs, as the provider tests drive it.
VALUE = "value-canary-7f3a"
PROPS: dict[str, Any] = {
    "project_slug": "floe-platform",
    "environment": "dev",
    "path": "/compute/snowflake",
    "key": "SNOWFLAKE_PASSWORD",
    "value": VALUE,
    "comment": "",
    "adopt": False,
}


@pytest.fixture(autouse=True)
def _sigint_restored() -> Iterator[None]:
    """The program installs its own SIGINT handler (see deploy.program): not for the test run."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


CRDS_ENV = "FLOE_OPERATOR_CRDS"


def operator_crd(kind: str) -> dict[str, Any]:
    """The operator's CRD for ``kind``: from the file ``$FLOE_OPERATOR_CRDS`` names (what `helm
    template` renders from the pinned chart, as the GitHub workflow does), else from
    ../shared/reference, else skip."""
    rendered = os.environ.get(CRDS_ENV)
    if rendered:
        docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if isinstance(d, dict)]
        matches = [
            d for d in docs if d.get("kind") == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == kind
        ]
        if not matches:
            raise AssertionError(f"{rendered} ({CRDS_ENV}) has no CustomResourceDefinition for {kind}")
        return dict(matches[0])
    return dict(yaml.safe_load(reference_file(f"{kind.lower()}-crd.yaml").read_text()))


def reference_file(name: str) -> Path:
    """A file from ../shared/reference, or skip: that folder exists only on this project's machines."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the operator's reference files exist only beside the project checkout")
    return path


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    dependencies: list[str]
    protect: bool
    additional_secret_outputs: list[str]
    inputs: dict[str, Any]
    provider: str = ""
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (name, parent URN) of a spec, ("urn", URN)
    ignore_changes: list[str] = field(default_factory=list)

    def secret_inputs(self) -> set[str]:
        """Top-level input names the engine was told are secret."""
        return {k for k, v in self.inputs.items() if _is_secret(v)}

    def plain(self, key: str) -> Any:
        return _unwrap(self.inputs.get(key))


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == SECRET_SIG


def _unwrap(value: Any) -> Any:
    if _is_secret(value):
        return _unwrap(value["value"])
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class _EchoMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        outputs = dict(args.inputs)
        if args.typ == PASSWORD_TYPE:
            outputs["result"] = "generated-" + args.name
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "kubernetes:helm:template":  # what the chart renders, with installCRDs true
            opts = args.args["jsonOpts"]
            chart = (json.loads(opts) if isinstance(opts, str) else opts)["chart"]
            return {"result": [dict(o) for o in RENDERED[chart]]}, []
        return {}, []  # failures as a list: the SDK iterates them (None would crash it)


CHART_OBJECTS: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "infisicalsecrets.secrets.infisical.com", "annotations": {"controller-gen": "v0.18.0"}},
        "spec": {"group": "secrets.infisical.com", "names": {"kind": "InfisicalSecret"}},
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "infisicalauths.secrets.infisical.com"},
        "spec": {"group": "secrets.infisical.com", "names": {"kind": "InfisicalAuth"}},
    },
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "operator", "namespace": "infisical"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "manager-role"}},
)
ESO_CHART_OBJECTS: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "externalsecrets.external-secrets.io"},
        "spec": {"group": "external-secrets.io", "names": {"kind": "ExternalSecret"}},
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clustersecretstores.external-secrets.io"},
        "spec": {"group": "external-secrets.io", "names": {"kind": "ClusterSecretStore"}},
    },
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "external-secrets", "namespace": "eso"}},
)
RENDERED = {"secrets-operator": CHART_OBJECTS, "external-secrets": ESO_CHART_OBJECTS}


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self) -> None:
        self.echo = _EchoMocks()
        super().__init__(self.echo)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    protect=bool(request.protect),
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    provider=request.provider,
                    retain_on_delete=bool(request.retainOnDelete),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    aliases=[
                        (a.spec.name, a.spec.parentUrn) if a.HasField("spec") else ("urn", a.urn)
                        for a in request.aliases
                    ],
                    ignore_changes=list(request.ignoreChanges),
                )
            )
        return response


@dataclass
class ProgramRun:
    """What one evaluation of the program registered, and its stack outputs."""

    registrations: list[Registration]
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (token, args) of each call
    outputs: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    def chart_rendered(self, chart: str = "secrets-operator") -> dict[str, Any]:
        """What the one `kubernetes:helm:template` call of ``chart`` asked Helm to render."""
        calls = [a["jsonOpts"] for token, a in self.invokes if token == "kubernetes:helm:template"]
        (opts,) = [o for o in (json.loads(c) if isinstance(c, str) else c for c in calls) if o["chart"] == chart]
        return dict(opts)

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def named(self, typ: str, name: str) -> Registration:
        (match,) = [r for r in self.of_type(typ) if r.name == name]
        return match

    def by_urn(self, urn: str) -> Registration:
        (match,) = [r for r in self.registrations if r.urn == urn]
        return match


K8S_MANIFEST = """\
plugins:
  secrets:
    type: k8s
compute:
  type: snowflake
  connection_secret_ref: snowflake-credentials
secrets:
  snowflake-credentials:
    keys:
      SNOWFLAKE_USER: {config: true}
      SNOWFLAKE_PASSWORD: {generate: {length: 24, special: false}}
"""


def with_operator_api(manifest: str, api: str) -> str:
    """``manifest`` (YAML text) with ``plugins.secrets.config.operator.api`` set to ``api``.

    Without it the operator's v1beta1 objects are planned (InfisicalStaticSecret, InfisicalConnection,
    InfisicalAuth); tests of the v1alpha1 InfisicalSecret name that API with this."""
    doc = yaml.safe_load(manifest)
    doc["plugins"]["secrets"]["config"].setdefault("operator", {})["api"] = api
    return yaml.safe_dump(doc, sort_keys=False)


def default_config(stack: str) -> dict[str, Any]:
    """Stack config for the example manifest: operator identity, writer identity, config values."""
    return {
        "floe:environment": stack,
        "floe:operatorClientId": "client-id-canary",
        "floe:operatorClientSecret": "client-secret-canary",
        "floe:secretValues": {"snowflake-credentials": {"SNOWFLAKE_USER": "user-canary"}},
        "infisical:clientId": "writer-client-id",
        "infisical:clientSecret": "writer-secret-canary",
    }


RunProgram = Callable[..., ProgramRun]


@pytest.fixture
def run_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunProgram:
    """Evaluate the real Pulumi program under recording mocks: ``run(manifest_text, stack, config)``."""
    for var in WRITER_ENV.values():  # only the config a test passes may count
        monkeypatch.delenv(var, raising=False)

    def run(
        manifest: str | None = None,
        stack: str = "dev",
        config: Mapping[str, Any] | None = None,
        expect_error: bool = False,
        preview: bool = False,
    ) -> ProgramRun:
        from floe_infra.deploy.program import run as program

        project = tmp_path / stack
        project.mkdir(exist_ok=True)
        manifest_text = (ROOT / "manifest.yaml").read_text() if manifest is None else textwrap.dedent(manifest)
        (project / "manifest.yaml").write_text(manifest_text)
        values = default_config(stack) if config is None else dict(config)
        monitor = RecordingMonitor()
        pulumi.runtime.settings.ROOT.set(None)  # a fresh stack resource per run, named after its stack
        pulumi.runtime.set_mocks(monitor.mocks, project="floe", stack=stack, preview=preview, monitor=monitor)
        pulumi.runtime.settings.SETTINGS.root_directory = str(project)
        secret_keys = [k for k in values if k.removeprefix("floe:") in SECRET_KEYS or k == "infisical:clientSecret"]
        pulumi.runtime.set_all_config(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}, secret_keys
        )
        result = ProgramRun(registrations=monitor.registrations, invokes=monitor.echo.invokes)

        @pulumi.runtime.test  # type: ignore[untyped-decorator]
        def evaluate() -> pulumi.Output[Any]:
            platform = program()
            return pulumi.Output.from_input(platform.outputs).apply(lambda o: result.outputs.update(secrets=o))

        try:
            evaluate()
        except (Exception, SystemExit) as exc:
            if not expect_error:
                raise
            result.error = exc
        return result

    return run


WRITER = ("writer-client-id", "writer-client-secret-canary")
READER = ("reader-client-id", "reader-client-secret-canary")
FAST = RetryPolicy(timeout=0.5, deadline=2.0, backoff=0.01, max_backoff=0.05)


@dataclass
class InfisicalFixture:
    """A running Infisical double with project ``floe-platform``, a writer and a read-only identity."""

    double: InfisicalDouble
    project: Project

    def provider(self, identity: tuple[str, str] = WRITER, policy: RetryPolicy = FAST) -> InfisicalSecretValueProvider:
        """A provider configured as the engine would, from ``infisical:*`` stack config."""
        provider = InfisicalSecretValueProvider(site_url="https://unused.example", policy=policy)
        raw = {
            "infisical:siteUrl": self.double.url,
            "infisical:clientId": identity[0],
            "infisical:clientSecret": identity[1],
        }
        provider.configure(ConfigureRequest(DynamicConfig(raw, "floe")))
        return provider


@pytest.fixture
def infisical() -> Iterator[InfisicalFixture]:
    double = InfisicalDouble()
    double.add_identity(*WRITER)
    double.add_identity(*READER, can_write=False)
    project = double.add_project("floe-platform")
    forget_connections()  # each test is a fresh provider process: its own login
    with DoubleServer(double):
        yield InfisicalFixture(double, project)
    forget_connections()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's Pulumi files and example manifest, as the current directory."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "manifest.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
