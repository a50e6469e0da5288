"""generate: keys: a random.RandomPassword each, its knobs, its rotation, and the move of values
made by the former GeneratedPassword (``floe secrets upgrade``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, RunProgram, default_config

from floe_infra import build_plan, load_manifest, parse_stack_config
from floe_infra.cli import main
from floe_infra.day2.upgrade import UpgradeError, plan_upgrade, redact
from floe_infra.deploy.secret_value import _replaces_legacy_value
from floe_infra.errors import FloeError
from floe_infra.plan.desired import LEGACY_PASSWORD_TYPE, PASSWORD_TYPE

VALUE = "pulumi-python:dynamic/infisical:SecretValue"
EXAMPLE = (ROOT / "manifest.yaml").read_text()
TWO_GENERATED = EXAMPLE.replace(
    "      SNOWFLAKE_USER: {config: true}",
    "      SNOWFLAKE_USER: {config: true}\n"
    "      SNOWFLAKE_TOKEN: {generate: {length: 40, min_upper: 2, min_numeric: 3, override_special: '-_'}}",
)


def test_the_random_provider_makes_each_generated_value(run_program: RunProgram) -> None:
    run = run_program(TWO_GENERATED)
    token = run.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_TOKEN")
    password = run.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_PASSWORD")
    # Only the knobs the manifest sets are sent: random's defaults are what an import records.
    assert {k: token.plain(k) for k in token.inputs} == {
        "length": 40,
        "special": True,
        "minUpper": 2,
        "minNumeric": 3,
        "overrideSpecial": "-_",
    }
    assert {k: password.plain(k) for k in password.inputs} == {"length": 32, "special": False}
    assert "result" in token.additional_secret_outputs  # the SDK's own: the value is secret in state
    # Never protected (state only: protect would only refuse a rotation), in a protected stack too.
    protected = {**default_config("prod"), "floe:protect": "true", "floe:kubeContext": "floe-prod"}
    prod = run_program(TWO_GENERATED, "prod", protected)
    assert prod.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_TOKEN").protect is False
    assert prod.named(VALUE, "/compute/snowflake:SNOWFLAKE_TOKEN").protect is True
    value = run.named(VALUE, "/compute/snowflake:SNOWFLAKE_TOKEN")
    assert token.urn in value.dependencies
    assert value.plain("value") == "generated-/compute/snowflake:SNOWFLAKE_TOKEN" and "value" in value.secret_inputs()
    assert value.plain("generated") is True and "rotation" not in value.inputs
    # Written for every value: only inputs written before RandomPassword lack it (see the guard).
    assert run.named(VALUE, "/compute/snowflake:SNOWFLAKE_USER").plain("generated") is False


def test_special_false_is_compared_only_from_the_first_rotation(run_program: RunProgram) -> None:
    """An imported password records special: true, whatever made it: without a rotation mark the
    program does not ask for a replace over it."""
    run = run_program(TWO_GENERATED)
    assert run.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_PASSWORD").ignore_changes == ["special"]
    assert run.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_TOKEN").ignore_changes == []


def test_a_rotation_mark_is_the_keeper_of_that_one_value(run_program: RunProgram) -> None:
    config = {**default_config("dev"), "floe:rotations": {"snowflake-credentials": {"SNOWFLAKE_PASSWORD": "2026-12"}}}
    run = run_program(TWO_GENERATED, config=config)
    rotated = run.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_PASSWORD")
    other = run.named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_TOKEN")
    assert rotated.plain("keepers") == {"rotation": "2026-12"} and rotated.ignore_changes == []
    assert "keepers" not in other.inputs
    assert run.named(VALUE, "/compute/snowflake:SNOWFLAKE_PASSWORD").plain("rotation") == "2026-12"


def test_a_renamed_key_keeps_its_password_through_an_alias(run_program: RunProgram) -> None:
    renamed = EXAMPLE.replace(
        "SNOWFLAKE_PASSWORD: {generate:", "SNOWFLAKE_PASS: {renamed_from: SNOWFLAKE_PASSWORD, generate:"
    )
    password = run_program(renamed).named(PASSWORD_TYPE, "/compute/snowflake:SNOWFLAKE_PASS")
    assert ("/compute/snowflake:SNOWFLAKE_PASSWORD", "") in password.aliases


KNOBS = [  # (generate: block, the message's tail)
    (
        "{length: 8, min_upper: 5, min_numeric: 4}",
        r"generate: min_upper \+ min_lower \+ min_numeric \+ min_special is 9, more than length 8: raise length "
        r"or lower a minimum",
    ),
    ("{special: false, min_special: 1}", r"generate: special: false makes no special characters: remove min_special"),
    ("{special: false, override_special: '-'}", r"generate: special: false makes no special characters"),
    ("{override_special: 'ab'}", r"generate\.override_special: String should match pattern"),
    ("{override_special: ''}", r"generate\.override_special: String should have at least 1 character"),
    ("{min_lower: -1}", r"generate\.min_lower: Input should be greater than or equal to 0"),
    ("{min_upper: '2'}", r"generate\.min_upper: Input should be a valid integer"),
    ("{keepers: {a: b}}", r"generate\.keepers: unknown key \(found {'a': 'b'}\): remove it or fix its spelling"),
]


@pytest.mark.parametrize(("block", "message"), KNOBS, ids=[b for b, _ in KNOBS])
def test_generate_knobs_are_checked_with_the_field_and_the_fix(tmp_path: Path, block: str, message: str) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(EXAMPLE.replace("{generate: {length: 32, special: false}}", f"{{generate: {block}}}"))
    with pytest.raises(FloeError) as caught:
        load_manifest(path)
    assert re.search(
        rf"{path}: 1 problem:\n  - line 28: secrets\.snowflake-credentials\.keys\.SNOWFLAKE_PASSWORD\."
        rf"{message}",
        str(caught.value),
    ), str(caught.value)


def _plan(tmp_path: Path, rotations: Any) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(EXAMPLE)
    settings = parse_stack_config("dev", {"environment": "dev", "rotations": rotations}, "Pulumi.dev.yaml")
    build_plan(load_manifest(path), settings)


@pytest.mark.parametrize(
    ("rotations", "message"),
    [
        (
            {"snowflake-credentials": {"SNOWFLAKE_USER": "1"}},
            "Pulumi.dev.yaml: floe:rotations.snowflake-credentials.SNOWFLAKE_USER names no generate: key of the "
            "manifest (generated keys: snowflake-credentials.SNOWFLAKE_PASSWORD): fix the name, or remove it with "
            "`pulumi config rm --stack dev --path 'floe:rotations.snowflake-credentials.SNOWFLAKE_USER'`",
        ),
        ({"a.b": {"K": "1"}}, 'floe:rotations["a.b"].K names no generate: key'),
        (
            {"snowflake-credentials": {"SNOWFLAKE_PASSWORD": "Not A Mark"}},
            "Pulumi.dev.yaml: floe:rotations.snowflake-credentials.SNOWFLAKE_PASSWORD: 'Not A Mark' is not a "
            "rotation mark",
        ),
        ({"snowflake-credentials": {"SNOWFLAKE_PASSWORD": [3]}}, "a rotation mark must be a string; found"),
        (["x"], "floe:rotations must be an object {reference: {KEY: mark}}; found"),
    ],
    ids=["not-generated", "dotted-name-quoted", "bad-mark", "not-a-string", "not-an-object"],
)
def test_rotation_marks_are_checked(tmp_path: Path, rotations: Any, message: str) -> None:
    with pytest.raises(FloeError) as caught:
        _plan(tmp_path, rotations)
    assert message in str(caught.value)


def test_a_number_is_a_rotation_mark_as_pulumi_config_set_path_stores_it() -> None:
    settings = parse_stack_config("dev", {"environment": "dev", "rotations": {"r": {"K": 202612}}}, "Pulumi.dev.yaml")
    assert settings.rotations == {"r": {"K": "202612"}}


# --- the guard: no new value over one a release before RandomPassword made --------------------

OLD = {"path": "/db", "key": "PASSWORD", "value": "old-value-canary"}  # inputs written by that release
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # what the engine sends for a value not known yet
GUARD = [
    ("upgraded-same-value", OLD, {**OLD, "generated": True}, False),
    ("not-upgraded-preview", OLD, {**OLD, "value": UNKNOWN, "generated": True}, True),
    ("not-upgraded-up", OLD, {**OLD, "value": "new-value", "generated": True}, True),
    ("rotation-asked-for", OLD, {**OLD, "value": UNKNOWN, "generated": True, "rotation": "r2"}, False),
    ("written-by-this-release", {**OLD, "generated": True}, {**OLD, "value": "new", "generated": True}, False),
    ("a-config-value", OLD, {**OLD, "value": "new", "generated": False}, False),
    (
        "config-then-generate-written-by-this-release",
        {**OLD, "generated": False},
        {**OLD, "value": UNKNOWN, "generated": True},
        False,
    ),
    ("a-create", {}, {**OLD, "value": UNKNOWN, "generated": True}, False),
]


@pytest.mark.parametrize(("olds", "news", "refused"), [g[1:] for g in GUARD], ids=[g[0] for g in GUARD])
def test_a_new_value_over_a_legacy_one_needs_the_upgrade_or_a_rotation(
    olds: dict[str, Any], news: dict[str, Any], refused: bool
) -> None:
    problem = _replaces_legacy_value(olds, news)
    assert bool(problem) is refused
    if problem:
        assert problem.startswith("/db:PASSWORD holds a value that an earlier release wrote (made by GeneratedPassword")
        assert "run `floe secrets upgrade --stack <stack>` first" in problem
        assert "old-value-canary" not in problem and "new-value" not in problem


def test_the_guard_names_the_stack_it_runs_for() -> None:
    problem = _replaces_legacy_value(OLD, {**OLD, "value": "new", "generated": True, "owner": "organization/floe/prod"})
    assert problem is not None and "run `floe secrets upgrade --stack prod` first" in problem
    assert "`pulumi config set --stack prod --path 'floe:rotations.<reference>.PASSWORD' <mark>`" in problem


# --- floe secrets upgrade: what it imports, from an exported state -------------------------------

PLATFORM = "urn:pulumi:prod::floe::floe:secrets:Platform::floe-secrets"


def _secret(value: str) -> dict[str, str]:
    return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": json.dumps(value)}


def _legacy(name: str, value: str, protect: bool) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:prod::floe::floe:secrets:Platform${LEGACY_PASSWORD_TYPE}::{name}",
        "type": LEGACY_PASSWORD_TYPE,
        "protect": protect,
        "parent": PLATFORM,
        "inputs": {"length": 32, "special": True},
        "outputs": {"length": 32, "result": _secret(value)},
    }


def _random(name: str, value: str) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:prod::floe::floe:secrets:Platform${PASSWORD_TYPE}::{name}",
        "type": PASSWORD_TYPE,
        "outputs": {"result": _secret(value)},
    }


def test_upgrade_imports_each_legacy_value_under_the_platform_with_its_protection() -> None:
    deployment = {
        "resources": [
            {"urn": PLATFORM, "type": "floe:secrets:Platform"},
            _legacy("/db:PASSWORD", "v-db-canary", protect=True),
            _legacy("floe-jobs/app/TOKEN", "v-app-canary", protect=False),
            _legacy("/done:KEY", "v-done", protect=False),
            _random("/done:KEY", "v-done"),
            _legacy("/stray:KEY", "v-stray", protect=False),
            _random("/stray:KEY", "made-by-an-up-before-the-upgrade"),
        ]
    }
    plan = plan_upgrade(deployment, "prod")
    assert [(m.name, m.value) for m in plan.moves] == [
        ("/db:PASSWORD", "v-db-canary"),
        ("floe-jobs/app/TOKEN", "v-app-canary"),
        ("/stray:KEY", "v-stray"),
    ]
    assert plan.done == ("/done:KEY",)
    assert plan.stray == (f"urn:pulumi:prod::floe::floe:secrets:Platform${PASSWORD_TYPE}::/stray:KEY",)
    assert plan.import_file("4.19.1") == {
        "nameTable": {"platform": PLATFORM},
        "resources": [
            {
                "type": PASSWORD_TYPE,
                "name": "/db:PASSWORD",
                "id": "v-db-canary",
                "parent": "platform",
                "version": "4.19.1",
            },
            {
                "type": PASSWORD_TYPE,
                "name": "floe-jobs/app/TOKEN",
                "id": "v-app-canary",
                "parent": "platform",
                "version": "4.19.1",
            },
            {"type": PASSWORD_TYPE, "name": "/stray:KEY", "id": "v-stray", "parent": "platform", "version": "4.19.1"},
        ],
    }
    # Imported protected; then every RandomPassword and every legacy entry is unprotected.
    legacy = [
        f"urn:pulumi:prod::floe::floe:secrets:Platform${LEGACY_PASSWORD_TYPE}::{n}"
        for n in ("/db:PASSWORD", "/stray:KEY", "floe-jobs/app/TOKEN")
    ]
    made = [
        f"urn:pulumi:prod::floe::floe:secrets:Platform${PASSWORD_TYPE}::{n}"
        for n in ("/db:PASSWORD", "/stray:KEY", "floe-jobs/app/TOKEN")
    ]
    assert plan.unprotect() == sorted(legacy + made)
    assert plan.unprotect(imported=False) == sorted(legacy)  # a failed import made none
    assert "v-db-canary" not in repr(plan)


PLATFORM_ENTRY = {"urn": PLATFORM, "type": "floe:secrets:Platform"}
USER = {
    "urn": "urn:pulumi:prod::floe::floe:secrets:Platform$kubernetes:core/v1:Secret::app",
    "type": "k8s",
    "dependencies": [f"urn:pulumi:prod::floe::floe:secrets:Platform${PASSWORD_TYPE}::/db:K"],
}


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ([_legacy("/db:K", "v", False)], "the state holds 0 floe:secrets:Platform resources, not one"),
        (
            [PLATFORM_ENTRY, {**_legacy("/db:K", "v", False), "outputs": {"result": "[secret]"}}],
            "the GeneratedPassword /db:K shows no value in `pulumi stack export --show-secrets`",
        ),
        (
            [PLATFORM_ENTRY, {**_legacy("/db:K", "v", False), "outputs": {}}],
            "the GeneratedPassword /db:K shows no value",
        ),
        (
            [
                PLATFORM_ENTRY,
                _legacy("/db:K", "v", False),
                {**_random("/db:K", "rotated"), "inputs": {"keepers": {"a": "1"}}},
            ],
            "the RandomPassword /db:K holds another value than its GeneratedPassword, and it is in use",
        ),
        (
            [PLATFORM_ENTRY, _legacy("/db:K", "v", False), _random("/db:K", "written-into-a-secret"), USER],
            "finish with `pulumi up --stack prod`, which deletes the GeneratedPassword",
        ),
    ],
    ids=["no-platform", "exported-without-show-secrets", "no-value", "rotated-after-the-upgrade", "in-a-secret"],
)
def test_upgrade_refuses_a_state_it_cannot_move(resources: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(UpgradeError, match=re.escape(message)):
        plan_upgrade({"resources": resources}, "prod")


def test_entries_pending_deletion_are_not_moved() -> None:
    """An interrupted replace of the former release leaves the old password marked delete."""
    resources = [PLATFORM_ENTRY, {**_legacy("/db:K", "old", False), "delete": True}, _legacy("/db:K", "v", False)]
    assert [m.value for m in plan_upgrade({"resources": resources}, "prod").moves] == ["v"]


def test_a_stack_with_nothing_to_move_is_a_no_op() -> None:
    assert plan_upgrade({"resources": [PLATFORM_ENTRY]}, "prod").moves == ()


def test_what_pulumi_says_is_redacted_before_it_is_shown() -> None:
    said = 'error: id "ab\\"cd-long" of abcd: ab"cd-long'
    assert redact(said, ["ab", 'ab"cd-long']) == 'error: id "[secret]" of [secret]cd: [secret]'


def test_upgrade_without_the_pulumi_cli_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["secrets", "upgrade", "--stack", "prod"]) == 2
    assert capsys.readouterr().err == (
        "floe: error: the pulumi CLI is not on PATH: install it (see the README's prerequisites)\n"
    )


def test_a_type_k8s_stack_deploys_generate_keys_only_after_the_upgrade(run_program: RunProgram) -> None:
    """Type k8s has no value writer to refuse a new value over a GeneratedPassword's: its program
    stops, creating nothing, until `floe secrets upgrade` has set floe:passwords random."""
    from support import K8S_MANIFEST

    from floe_infra.deploy.program import BadInput

    config = {"floe:environment": "dev", "floe:secretValues": {"snowflake-credentials": {"SNOWFLAKE_USER": "u"}}}
    run = run_program(K8S_MANIFEST, config=config, expect_error=True)
    assert isinstance(run.error, BadInput) and run.registrations == []
    assert "run `floe secrets upgrade --stack dev` once" in run.error.message
    upgraded = run_program(K8S_MANIFEST, config={**config, "floe:passwords": "random"})
    assert [r.name for r in upgraded.of_type(PASSWORD_TYPE)] == ["floe-jobs/snowflake-credentials/SNOWFLAKE_PASSWORD"]
