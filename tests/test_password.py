"""GeneratedPassword: the provider behind generate: keys (what random.RandomPassword did)."""

from __future__ import annotations

import base64
import pickle
import string
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from floe_infra.deploy.password import SPECIAL, GeneratedPasswordProvider


def _outs(result: Any) -> dict[str, Any]:
    """A provider result's outputs (typed Optional in the SDK; always set by ours)."""
    assert result.outs is not None
    return dict(result.outs)



@pytest.mark.parametrize(
    ("special", "alphabet"),
    [(True, string.ascii_letters + string.digits + SPECIAL), (False, string.ascii_letters + string.digits)],
    ids=["special", "letters-and-digits"],
)
def test_create_draws_length_characters_from_the_alphabet(special: bool, alphabet: str) -> None:
    # 64.0: every number reaches a dynamic provider as a float.
    provider = GeneratedPasswordProvider()
    results = {_outs(provider.create({"length": 64.0, "special": special}))["result"] for _ in range(20)}
    assert len(results) == 20
    assert all(len(r) == 64 and set(r) <= set(alphabet) for r in results)


@pytest.mark.parametrize(
    ("olds", "news", "replaces"),
    [
        ({"length": 32, "special": True}, {"length": 32, "special": True}, []),
        ({"length": 32, "special": True}, {"length": 40, "special": True}, ["length"]),
        ({"length": 32, "special": True}, {"length": 32, "special": False}, ["special"]),
    ],
    ids=["same-spec-keeps-the-value", "length-replaces", "special-replaces"],
)
def test_only_a_spec_change_makes_a_new_value(
    olds: dict[str, object], news: dict[str, object], replaces: list[str]
) -> None:
    diff = GeneratedPasswordProvider().diff("id", {**olds, "result": "x"}, news)
    assert diff.changes is bool(replaces)
    assert diff.replaces == replaces


def test_check_takes_the_float_the_engine_sends_for_a_whole_number() -> None:
    checked = GeneratedPasswordProvider().check({}, {"length": 32.0, "special": False})
    assert checked.failures == []
    assert checked.inputs == {"length": 32, "special": False}


@pytest.mark.parametrize("length", [0, 5000, "32", True, 3.5], ids=["zero", "huge", "string", "bool", "fraction"])
def test_check_refuses_a_bad_length(length: object) -> None:
    failures = GeneratedPasswordProvider().check({}, {"length": length, "special": True}).failures
    assert [f.property for f in failures] == ["length"]


def test_the_pickled_provider_carries_no_value() -> None:
    provider = GeneratedPasswordProvider()
    result = _outs(provider.create({"length": 48, "special": False}))["result"]
    assert result.encode() not in pickle.dumps(provider)


def test_the_provider_is_pickled_under_the_path_existing_states_hold() -> None:
    """Every stack's state holds it pickled as floe_infra.password.GeneratedPasswordProvider, though
    the class lives in floe_infra.deploy: moving that path would break their refresh and destroy."""
    import floe_infra.password

    pickled = base64.b64decode(serialize_provider(GeneratedPasswordProvider()))
    assert b"floe_infra.password" in pickled and b"floe_infra.deploy" not in pickled
    assert type(pickle.loads(pickled)) is floe_infra.password.GeneratedPasswordProvider
