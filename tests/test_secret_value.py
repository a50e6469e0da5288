"""The InfisicalSecretValue dynamic provider, driven through the real infisicalsdk against the double."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import struct_pb2
from infisical_double import Fault, InfisicalDouble
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config as DynamicConfig
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from support import FAST, PROPS, READER, VALUE, WRITER, InfisicalFixture

from floe_infra import InfisicalSecretValueProvider
from floe_infra.clients.errors import InfisicalError
from floe_infra.clients.transport import RetryPolicy

ID = "floe-platform:dev:/compute/snowflake:SNOWFLAKE_PASSWORD"


def _outs(result: Any) -> dict[str, Any]:
    """A provider result's outputs (typed Optional in the SDK; always set by ours)."""
    assert result.outs is not None
    return dict(result.outs)


def stored(
    infisical: InfisicalFixture, key: str = "SNOWFLAKE_PASSWORD", path: str = "/compute/snowflake"
) -> str | None:
    return infisical.double.value(infisical.project, "dev", path, key)


# --- check and diff: no network ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "prop", "message"),
    [
        ({"key": "1BAD"}, "key", r"key: '1BAD' is not an environment-variable name"),
        ({"path": "compute"}, "path", r"path: 'compute' is not an Infisical folder path: start with '/'"),
        ({"project_slug": ""}, "project_slug", r"project_slug is required"),
        ({"environment": None}, "environment", r"environment is required"),
        ({"value": None}, "value", r"value is required"),
    ],
    ids=["key", "path", "empty-project", "missing-environment", "missing-value"],
)
def test_check_names_the_property_and_the_fix(change: dict[str, Any], prop: str, message: str) -> None:
    result = InfisicalSecretValueProvider().check({}, {**PROPS, **change})
    assert [f.property for f in result.failures] == [prop]
    assert re.search(message, result.failures[0].reason)
    assert VALUE not in " ".join(f.reason for f in result.failures)


def test_check_accepts_unknowns_during_preview() -> None:
    result = InfisicalSecretValueProvider().check({}, {**PROPS, "value": rpc.UNKNOWN, "path": rpc.UNKNOWN})
    assert result.failures == []


def _as_engine_sends(props: dict[str, Any]) -> dict[str, Any]:
    """Properties through the SDK's own deserializer, from the struct the engine sends."""
    struct = struct_pb2.Struct()
    struct.update(props)
    return dict(rpc.deserialize_properties(struct, True))


OUTPUT = {rpc._special_sig_key: rpc._special_output_value_sig, "secret": True}
SECRET = {rpc._special_sig_key: rpc._special_secret_sig}


@pytest.mark.parametrize(
    "value",
    [{**SECRET, "value": rpc.UNKNOWN}, rpc.UNKNOWN, OUTPUT],
    ids=["secret-unknown", "unknown", "unknown-output-value"],
)
def test_check_accepts_what_preview_sends_for_a_value_not_known_yet(value: Any) -> None:
    """A value from a resource not created yet (a GeneratedPassword), as the engine sends it."""
    news = _as_engine_sends({**PROPS, "value": value})
    assert InfisicalSecretValueProvider().check({}, news).failures == []


@pytest.mark.parametrize(
    "value", [{**SECRET, "value": VALUE}, {**OUTPUT, "value": VALUE}], ids=["secret", "secret-output-value"]
)
def test_diff_sees_no_change_in_the_same_secret_value(value: Any) -> None:
    news = _as_engine_sends({**PROPS, "value": value})
    diff = InfisicalSecretValueProvider().diff(ID, {**PROPS, "comment": "", "adopt": False}, news)
    assert diff.changes is False


@pytest.mark.parametrize(
    ("change", "changes", "replaces"),
    [
        ({}, False, []),
        ({"value": "other"}, True, []),
        ({"value": rpc.UNKNOWN}, True, []),
        ({"comment": "rotated"}, True, []),
        ({"key": "SNOWFLAKE_PASS"}, True, []),
        ({"path": "/compute/other"}, True, ["path"]),
        ({"environment": "prod"}, True, ["environment"]),
        ({"project_slug": "other"}, True, ["project_slug"]),
        ({"site_url": "https://other-infisical.example.com"}, True, []),
    ],
    ids=["same", "value", "unknown-value", "comment", "rename-key", "path", "environment", "project", "other-host"],
)
def test_diff(infisical: InfisicalFixture, change: dict[str, Any], changes: bool, replaces: list[str]) -> None:
    result = infisical.provider().diff(ID, {**PROPS, "__provider": "old"}, {**PROPS, **change, "__provider": "new"})
    assert (result.changes, result.replaces) == (changes, replaces)
    assert infisical.double.requests == []


# --- the lifecycle ------------------------------------------------------------------------


def secret_of(infisical: InfisicalFixture, key: str = "SNOWFLAKE_PASSWORD") -> Any:
    return infisical.double.secrets[(infisical.project.id, "dev", "/compute/snowflake", key)]


def test_create_makes_the_folders_then_the_secret(infisical: InfisicalFixture) -> None:
    result = infisical.provider().create(dict(PROPS))
    assert result.id == secret_of(infisical).id  # Infisical's own id: it survives renames
    assert stored(infisical) == VALUE
    counts = infisical.double.count()
    assert counts["POST /api/v1/auth/universal-auth/login"] == 1
    assert counts["POST /api/v2/folders"] == 2  # /compute, then /compute/snowflake
    assert counts["POST /api/v3/secrets/raw/{name}"] == 1


def test_one_login_per_process_and_folders_made_once(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    for key in ("A", "B", "C"):
        provider.create({**PROPS, "key": key})
    counts = infisical.double.count()
    assert counts["POST /api/v1/auth/universal-auth/login"] == 1
    assert counts["GET /api/v2/workspace/floe-platform"] == 1
    assert counts["POST /api/v2/folders"] == 2
    assert counts["POST /api/v3/secrets/raw/{name}"] == 3


MINE = "acme/floe/prod-eu"


def _marked(owner: str, **change: Any) -> dict[str, Any]:
    """PROPS as check() makes them for a stack ``owner``: the comment is its mark."""
    return dict(InfisicalSecretValueProvider().check({}, {**PROPS, "owner": owner, **change}).inputs)


@pytest.mark.parametrize(
    ("existing_owner", "existing_value", "adopt", "taken", "named"),
    [
        ("acme/floe/prod-us", VALUE, False, False, "not written by this stack (stack acme/floe/prod-us)"),  # rival
        ("", VALUE, False, False, "not written by this stack (no floe-infra mark)"),  # set by hand, the same value
        ("", "another-canary", False, False, "not written by this stack (no floe-infra mark)"),
        (MINE, VALUE, False, True, None),  # this stack's: an `up` killed before its state recorded the key
        # this stack's name, another value: a same-named stack elsewhere, never taken silently
        (MINE, "another-canary", False, False, "marked as this stack's (stack acme/floe/prod-eu) but holding another"),
        ("acme/floe/prod-us", VALUE, True, True, None),  # adopt: true takes anything
    ],
    ids=["rival-same-value", "by-hand-same-value", "by-hand-other-value", "own-mark", "own-name-other-value", "adopt"],
)
def test_create_takes_over_only_a_key_that_carries_this_stacks_mark(
    infisical: InfisicalFixture,
    existing_owner: str,
    existing_value: str,
    adopt: bool,
    taken: bool,
    named: str | None,
) -> None:
    provider = infisical.provider()
    provider.create(_marked(existing_owner, value=existing_value))
    mine = _marked(MINE, adopt=adopt)
    if not taken:
        with pytest.raises(InfisicalError) as refused:
            provider.create(mine)
        message = str(refused.value)
        assert (
            "Infisical already has key SNOWFLAKE_PASSWORD in project floe-platform, environment dev, path "
            f"/compute/snowflake, {named}"
        ) in message and "set adopt: true on that key" in message
        assert VALUE not in message and "another-canary" not in message
        assert stored(infisical) == existing_value
        return
    provider.create(mine)
    assert stored(infisical) == VALUE
    held = infisical.double.secrets[(infisical.project.id, "dev", "/compute/snowflake", "SNOWFLAKE_PASSWORD")]
    assert held.comment == "managed by floe-infra, stack acme/floe/prod-eu"


def test_check_makes_the_owner_the_keys_comment() -> None:
    inputs = InfisicalSecretValueProvider().check({}, {**PROPS, "owner": "floe/prod-us"}).inputs
    assert inputs["comment"] == "managed by floe-infra, stack floe/prod-us"
    failures = InfisicalSecretValueProvider().check({}, {**PROPS, "owner": 7}).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("owner", "owner must be a string: <pulumi org>/<project>/<stack>")
    ]


def test_create_with_adopt_takes_the_key_over_and_the_state_keeps_no_adopt(infisical: InfisicalFixture) -> None:
    """adopt is for the first create: the state keeps no flag that would change later operations."""
    provider = infisical.provider()
    provider.create(dict(PROPS))
    adopted = provider.create({**PROPS, "value": "adopted", "adopt": True})
    assert stored(infisical) == "adopted"
    assert "adopt" not in _outs(adopted)
    updated = provider.update(adopted.id, _outs(adopted), {**PROPS, "value": "next", "adopt": True})
    assert "adopt" not in _outs(updated)
    assert "adopt" not in _outs(provider.read(adopted.id, _outs(updated)))
    provider.delete(adopted.id, _outs(updated))  # an adopted key is owned like any other
    assert stored(infisical) is None


def test_the_id_survives_a_rename_and_the_state_points_at_the_renamed_key(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    created = provider.create(dict(PROPS))
    renamed = {**PROPS, "key": "SNOWFLAKE_PASS"}
    outs = _outs(provider.update(created.id, _outs(created), renamed))
    assert secret_of(infisical, "SNOWFLAKE_PASS").id == created.id
    read = provider.read(created.id, outs)
    assert (read.id, _outs(read)) == (created.id, outs)  # refresh: no change
    provider.create({**PROPS, "key": "NEIGHBOUR"})
    provider.delete(created.id, outs)
    assert stored(infisical, "SNOWFLAKE_PASS") is None and stored(infisical) is None
    assert stored(infisical, "NEIGHBOUR") == VALUE  # and nothing else


@pytest.mark.parametrize(
    "move",
    [lambda url: url.replace("127.0.0.1", "localhost"), lambda url: url + "/"],
    ids=["new-dns-name", "trailing-slash"],
)
def test_a_new_url_for_the_same_server_updates_and_never_deletes(
    infisical: InfisicalFixture, move: Callable[[str], str]
) -> None:
    provider = infisical.provider()
    created = provider.create(_marked(MINE, site_url=infisical.double.url))
    moved = _marked(MINE, site_url=move(infisical.double.url), value="after-move")
    assert provider.diff(created.id, _outs(created), moved).replaces == []
    before = len(infisical.double.requests)
    provider.update(created.id, _outs(created), moved)
    assert stored(infisical) == "after-move"
    assert [m for m, _ in infisical.double.requests[before:] if m == "DELETE"] == []


def test_a_new_host_that_lacks_the_key_gets_it(infisical: InfisicalFixture) -> None:
    """Another server behind the new URL (here: the one server, which lost the key): the update
    writes the key there, under its new name, and deletes nothing."""
    provider = infisical.provider()
    created = provider.create(_marked(MINE, site_url=infisical.double.url))
    infisical.double.secrets.clear()
    moved = _marked(MINE, site_url=infisical.double.url.replace("127.0.0.1", "localhost"), key="RENAMED")
    before = len(infisical.double.requests)
    provider.update(created.id, _outs(created), moved)
    assert stored(infisical, "RENAMED") == VALUE
    assert [m for m, _ in infisical.double.requests[before:] if m == "DELETE"] == []


@pytest.mark.parametrize("rival", ["floe/prod-us", ""], ids=["rival-stack", "by-hand"])
def test_a_new_host_updates_only_a_key_that_carries_this_stacks_mark(infisical: InfisicalFixture, rival: str) -> None:
    """At the new host the key is someone else's (another stack's mark, or none): refused, left as it is."""
    provider = infisical.provider()
    created = provider.create(_marked(MINE, site_url=infisical.double.url))
    infisical.double.secrets.clear()
    provider.create(_marked(rival, value="theirs-canary"))
    moved = _marked(MINE, site_url=infisical.double.url.replace("127.0.0.1", "localhost"), value="after-move")
    with pytest.raises(InfisicalError, match=r"not written by this stack .*: set adopt: true"):
        provider.update(created.id, _outs(created), moved)
    assert stored(infisical) == "theirs-canary"


def test_a_rename_whose_answer_was_lost_succeeds_on_the_retry(infisical: InfisicalFixture) -> None:
    """The PATCH renames the key but its answer is lost (502): the retry finds the old name gone,
    and the new name holding the value is success, not "deleted outside Pulumi"."""
    provider = infisical.provider()
    created = provider.create(dict(PROPS))
    double = infisical.double
    original = double.handle
    lost: list[bool] = []

    def land_then_fail(method: str, target: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        answer = original(method, target, headers, body)
        if method == "PATCH" and answer and answer[0] == 200 and not lost:
            lost.append(True)
            return 502, {"statusCode": 502, "message": "Bad Gateway", "error": "BadGateway"}
        return answer

    double.handle = land_then_fail  # type: ignore[method-assign]
    result = provider.update(created.id, _outs(created), {**PROPS, "key": "SNOWFLAKE_PASS", "value": "v2"})
    assert lost and stored(infisical, "SNOWFLAKE_PASS") == "v2" and stored(infisical) is None
    assert _outs(result)["key"] == "SNOWFLAKE_PASS"


def test_read_returns_the_live_value_so_drift_shows(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    infisical.double.secrets[
        (infisical.project.id, "dev", "/compute/snowflake", "SNOWFLAKE_PASSWORD")
    ].value = "drifted"
    result = provider.read(ID, dict(PROPS))
    assert result.id == ID and _outs(result)["value"] == "drifted"
    assert provider.diff(ID, _outs(result), dict(PROPS)).changes is True
    assert infisical.double.count()["GET /api/v3/secrets/raw/{name}"] == 1


def test_read_of_a_secret_deleted_outside_pulumi_drops_it_from_state(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    infisical.double.secrets.clear()
    result = provider.read(ID, dict(PROPS))
    assert (result.id, result.outs) == ("", {})


def test_update_is_one_request_and_renames_in_place(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    before = len(infisical.double.requests)
    provider.update(ID, dict(PROPS), {**PROPS, "key": "SNOWFLAKE_PASS", "value": "new-value", "comment": "rotated"})
    assert len(infisical.double.requests) == before + 1
    assert stored(infisical) is None
    assert stored(infisical, "SNOWFLAKE_PASS") == "new-value"


def test_update_of_a_secret_deleted_outside_pulumi_says_refresh(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    infisical.double.secrets.clear()
    with pytest.raises(InfisicalError, match=r"was deleted outside Pulumi: run `pulumi refresh`"):
        provider.update(ID, dict(PROPS), {**PROPS, "value": "new-value"})


def test_delete_is_one_request_and_a_missing_secret_counts_as_done(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    before = len(infisical.double.requests)
    provider.delete(ID, dict(PROPS))
    assert stored(infisical) is None
    assert len(infisical.double.requests) == before + 1
    provider.delete(ID, dict(PROPS))  # 404: already done


# --- faults -------------------------------------------------------------------------------


def test_relogin_after_expiry_drops_the_stale_token_the_server_refuses(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    infisical.double.expire_tokens()
    assert _outs(provider.read(ID, dict(PROPS)))["value"] == VALUE
    assert infisical.double.count()["POST /api/v1/auth/universal-auth/login"] == 2


@pytest.mark.parametrize(
    "fault",
    [Fault(status=429, retry_after="0"), Fault(status=503, times=2), Fault(status=None, times=2)],
    ids=["429-retry-after", "503-twice", "dropped-connections"],
)
def test_transient_failures_are_retried(infisical: InfisicalFixture, fault: Fault) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    infisical.double.inject(fault)
    assert _outs(provider.read(ID, dict(PROPS)))["value"] == VALUE


def test_retry_after_is_honoured(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()  # backoff of 10 ms: only Retry-After explains a 1 s wait
    provider.create(dict(PROPS))
    infisical.double.inject(Fault(status=429, retry_after="1"))
    start = time.monotonic()
    provider.read(ID, dict(PROPS))
    assert time.monotonic() - start >= 0.9


def test_a_create_whose_answer_was_lost_is_not_a_conflict(infisical: InfisicalFixture) -> None:
    """The first POST lands but its answer is lost (502 from a proxy): the retry finds the key."""
    provider = infisical.provider()
    provider.create({**PROPS, "key": "WARMUP"})
    double = infisical.double
    original = double.handle

    def land_then_fail(method: str, target: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        answer = original(method, target, headers, body)
        if method == "POST" and target.endswith("/SNOWFLAKE_PASSWORD") and answer and answer[0] == 200 and not lost:
            lost.append(True)
            return 502, {"statusCode": 502, "message": "Bad Gateway", "error": "BadGateway"}
        return answer

    lost: list[bool] = []
    double.handle = land_then_fail  # type: ignore[method-assign]
    provider.create(_marked(MINE))
    assert lost and stored(infisical) == VALUE


@pytest.mark.parametrize(
    "answered_first",
    [
        lambda d: d.expire_tokens(),
        lambda d: d.inject(Fault(status=429, retry_after="0")),
    ],
    ids=["expired-token-then-relogin", "429-then-retry"],
)
def test_no_silent_takeover_after_an_answered_attempt(
    infisical: InfisicalFixture, answered_first: Callable[[InfisicalDouble], None]
) -> None:
    """An attempt that got an answer (403 TokenError, 429) did nothing, so "already exists" on
    the next one is someone else's key: refuse, and leave their value alone."""
    provider = infisical.provider()
    provider.create({**PROPS, "value": "theirs"})  # someone else's key, where ours would go
    provider.create({**PROPS, "key": "WARMUP"})
    answered_first(infisical.double)
    with pytest.raises(InfisicalError, match="not written by this stack"):
        provider.create(dict(PROPS))
    assert stored(infisical) == "theirs"


def test_retries_stop_at_the_deadline(infisical: InfisicalFixture) -> None:
    provider = infisical.provider(policy=RetryPolicy(timeout=0.5, deadline=0.3, backoff=0.1, max_backoff=0.1))
    provider.create(dict(PROPS))
    infisical.double.inject(Fault(status=500, times=1000))
    start = time.monotonic()
    with pytest.raises(InfisicalError, match=r"could not read key SNOWFLAKE_PASSWORD .* kept failing for 0s"):
        provider.read(ID, dict(PROPS))
    assert time.monotonic() - start < 2


def test_a_server_that_never_answers_times_out(infisical: InfisicalFixture) -> None:
    provider = infisical.provider(policy=RetryPolicy(timeout=0.2, deadline=0.5, backoff=0.05, max_backoff=0.05))
    provider.create(dict(PROPS))
    infisical.double.latency = 1.0
    start = time.monotonic()
    with pytest.raises(InfisicalError, match=r"ReadTimeout"):
        provider.read(ID, dict(PROPS))
    assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (READER, r"machine identity reader-client-id may not create folder /compute in environment dev .*"
                 r"403 PermissionDenied: You are not allowed to create on secretFolders.*give it a role"),
        ((WRITER[0], "wrong-secret"), r"refused machine identity writer-client-id: wrong client secret"),
        (("nobody", "x"), r"refused machine identity nobody: no identity has this client id"),
    ],
    ids=["read-only", "wrong-secret", "unknown-client-id"],
)  # fmt: skip
def test_refusals_are_not_retried_and_say_which_identity(
    infisical: InfisicalFixture, identity: tuple[str, str], message: str
) -> None:
    with pytest.raises(InfisicalError, match=message) as caught:
        infisical.provider(identity).create(dict(PROPS))
    assert identity[1] not in str(caught.value) and VALUE not in str(caught.value)
    assert len(infisical.double.requests) <= 4  # login, project, folder: no retries
    assert stored(infisical) is None


def test_read_only_identity_cannot_write_the_secret(infisical: InfisicalFixture) -> None:
    infisical.provider().create(dict(PROPS))
    with pytest.raises(InfisicalError, match=r"reader-client-id may not update key SNOWFLAKE_PASSWORD .*"
                       r"You are not allowed to edit on secrets"):  # fmt: skip
        infisical.provider(READER).update(ID, dict(PROPS), {**PROPS, "value": "new-value"})
    assert stored(infisical) == VALUE


def test_unknown_environment_says_so(infisical: InfisicalFixture) -> None:
    with pytest.raises(
        InfisicalError, match=r"no environment qa or no such folder in project floe-platform.*floe:environment"
    ):
        infisical.provider().create({**PROPS, "environment": "qa"})


# --- secrets stay secret ------------------------------------------------------------------


def test_serialized_provider_holds_no_credential_token_or_value(infisical: InfisicalFixture) -> None:
    provider = infisical.provider()
    provider.create(dict(PROPS))
    provider.read(ID, dict(PROPS))
    pickled = base64.b64decode(serialize_provider(provider))
    tokens = list(infisical.double.tokens)
    for secret in (WRITER[1], VALUE, *tokens):
        assert secret.encode() not in pickled
    assert WRITER[0].encode() not in pickled


def test_the_provider_class_stays_importable_where_existing_states_pickled_it() -> None:
    """Every stack's state holds the pickled provider by module path: moving the class would break
    refresh and destroy of every existing stack."""
    import pickle

    from floe_infra.secret_value import InfisicalSecretValueProvider as at_its_path

    provider = at_its_path(site_url="https://infisical.company.com")
    pickled = base64.b64decode(serialize_provider(provider))
    assert b"floe_infra.secret_value" in pickled
    assert type(pickle.loads(pickled)) is at_its_path


def test_a_value_writes_to_its_own_host(infisical: InfisicalFixture) -> None:
    """site_url is the resource's: a provider configured for another host still writes there."""
    provider = infisical.provider()
    provider.create({**PROPS, "site_url": infisical.double.url})
    assert stored(infisical) == VALUE


def test_configure_falls_back_to_the_environment(infisical: InfisicalFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFISICAL_HOST", infisical.double.url)
    monkeypatch.setenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", WRITER[0])
    monkeypatch.setenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET", WRITER[1])
    provider = InfisicalSecretValueProvider(policy=FAST)
    provider.configure(ConfigureRequest(DynamicConfig({}, "floe")))
    provider.create(dict(PROPS))
    assert stored(infisical) == VALUE


def test_missing_credentials_name_the_commands_at_the_first_request_not_in_a_preview(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("INFISICAL_HOST", "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    provider = InfisicalSecretValueProvider(site_url="https://infisical.company.com")
    expected = (
        r"set `pulumi config set infisical:clientId <client-id>` \(or INFISICAL_UNIVERSAL_AUTH_CLIENT_ID\) "
        r"and `pulumi config set --secret infisical:clientSecret"
    )
    provider.configure(ConfigureRequest(DynamicConfig({}, "floe")))  # a preview configures, checks, diffs
    assert provider.check({}, dict(PROPS)).failures == []
    assert provider.diff(ID, dict(PROPS), dict(PROPS)).changes is False
    with pytest.raises(InfisicalError, match=expected):
        provider.create(dict(PROPS))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("Sun, 29 Nov 2026 10:00:30 GMT", 30.0), ("Sun, 29 Nov 2026 09:00:00 GMT", 0.0), ("soon", None)],
    ids=["delta-seconds", "http-date", "http-date-past", "unreadable"],
)
def test_retry_after_reads_seconds_and_http_dates(value: str, seconds: float | None) -> None:
    from datetime import UTC, datetime

    from floe_infra.clients.transport import _retry_after

    now = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC).timestamp()
    assert _retry_after({"Retry-After": value}, now=now) == seconds


def test_a_key_an_interrupted_up_wrote_is_taken_over_by_its_mark(infisical: InfisicalFixture) -> None:
    """`pulumi up` killed after Infisical created the key and before the state recorded it: the
    next create finds it carrying this stack's mark, and takes it over with one write."""
    provider = infisical.provider()
    first = provider.create(_marked(MINE))  # the run that was killed: its result never reached the state
    before = len(infisical.double.requests)
    again = infisical.provider().create(_marked(MINE))
    assert again.id == first.id and _outs(again)["value"] == VALUE
    assert stored(infisical) == VALUE
    assert [m for m, _ in infisical.double.requests[before:] if m == "DELETE"] == []
