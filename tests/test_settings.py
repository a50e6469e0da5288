"""Stack config (``floe:*``): one pydantic model, and messages that name the key and the fix."""

from __future__ import annotations

import pytest

from floe_infra.errors import StackConfigError
from floe_infra.model.settings import parse_stack_config

BAD = [
    (
        "not-set",
        {},
        "floe:environment is not set (the Infisical environment slug of this stack): run "
        "`pulumi config set --stack dev 'floe:environment' dev`",
    ),
    ("quoted-yes", {"protect": "yes"}, "floe:protect must be true or false; found 'yes'"),
    ("a-number", {"manifest": 5}, "floe:manifest must be a non-empty string; found 5"),
    ("empty", {"kubeContext": ""}, "floe:kubeContext must be a non-empty string; found ''"),
    ("slug", {"environment": "Dev Env"}, "floe:environment: 'Dev Env' is not an Infisical environment slug"),
    ("namespace", {"jobsNamespace": "Bad_NS"}, "floe:jobsNamespace: 'Bad_NS' is not a DNS-1123 label"),
    ("typo", {"enviroment": "dev"}, "unknown key floe:enviroment: remove it or fix its spelling (known keys: "),
]


@pytest.mark.parametrize(("values", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_stack_config_names_the_key_and_the_fix(values: dict[str, object], message: str) -> None:
    if values:  # every case but "not-set" has the required key
        values = {"environment": "dev", **values}
    with pytest.raises(StackConfigError) as info:
        parse_stack_config("dev", values, "Pulumi.dev.yaml")
    assert str(info.value).startswith(f"Pulumi.dev.yaml: {message}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("False", False), (True, True), ("TRUE", True)],
    ids=["true", "False", "a-yaml-boolean", "TRUE"],
)
def test_pulumi_string_booleans_are_booleans(raw: object, expected: bool) -> None:
    settings = parse_stack_config("dev", {"environment": "dev", "createNamespaces": raw}, "Pulumi.dev.yaml")
    assert settings.create_namespaces is expected


def test_operator_credentials_count_as_set_only_when_both_are() -> None:
    both = parse_stack_config("dev", {"environment": "dev", "operatorClientId": "i", "operatorClientSecret": "s"}, "x")
    one = parse_stack_config("dev", {"environment": "dev", "operatorClientId": "i"}, "x")
    assert (both.operator_credentials_set, one.operator_credentials_set) == (True, False)


def test_the_model_knows_exactly_the_keys_the_program_reads() -> None:
    """The program reads SCALAR_KEYS as values and SECRET_KEYS by presence; the model must validate
    the same keys, or one would be refused as unknown or never read."""
    from floe_infra.model.settings import KNOWN_KEYS, _StackConfig

    assert sorted(f.alias or name for name, f in _StackConfig.model_fields.items()) == sorted(KNOWN_KEYS)
