"""An access token that is no longer good, at each stage the real server has, through the real
infisicalsdk and the InfisicalSecretValue provider against the double.

The stages (../shared/reference/infisical-token-expiry-recordings.json, which the double replays):
past accessTokenTTL, the first use gets 401 "Failed to renew MI access token due to TTL expiration"
and the server deletes the token; a deleted token gets 401 "No identity access token found"; past
accessTokenMaxTTL, 403 TokenError. Each is one new login (from a new client: the SDK would send the
stale bearer with the login) and one retry; a refusal after that is one error naming the identity
and the HTTP status, never another login.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from infisical_double import (
    DELETED,
    JWT_EXPIRED,
    JWT_MALFORMED,
    LOGIN,
    PAST_MAX_TTL,
    PAST_TTL,
    TOKEN_NOT_FOUND,
    TTL_EXPIRED,
    InfisicalDouble,
)
from infisical_sdk.infisical_requests import APIError
from support import PROPS, VALUE, WRITER, InfisicalFixture

from floe_infra import InfisicalSecretValueProvider
from floe_infra.clients.auth import Credentials
from floe_infra.clients.errors import InfisicalError, PermissionDenied, Refused, TokenExpired, classify
from floe_infra.clients.infisical import connect

NEW_VALUE = "new-value-canary-91c2"
SECRET_ROUTE = "/api/v3/secrets/raw/{name}"
LOGIN_KIND = f"POST {LOGIN}"

STAGES = [
    pytest.param(PAST_TTL, TTL_EXPIRED, id="past-ttl-401"),
    pytest.param(DELETED, TOKEN_NOT_FOUND, id="deleted-401"),
    pytest.param(PAST_MAX_TTL, JWT_EXPIRED, id="past-max-ttl-403"),
]


@dataclass(frozen=True)
class Operation:
    """One provider operation on the secret: its one request, what it runs, and how success shows."""

    method: str
    exists_before: bool  # the secret is there when the operation starts
    run: Callable[[InfisicalSecretValueProvider, str], Any]
    done: Callable[[InfisicalFixture, Any], bool]


def _stored(infisical: InfisicalFixture) -> str | None:
    return infisical.double.value(infisical.project, PROPS["environment"], PROPS["path"], PROPS["key"])


OPERATIONS = {
    "create": Operation(
        "POST", False, lambda p, _id: p.create(dict(PROPS)), lambda inf, _result: _stored(inf) == VALUE
    ),
    "update": Operation(
        "PATCH",
        True,
        lambda p, id_: p.update(id_, dict(PROPS), {**PROPS, "value": NEW_VALUE}),
        lambda inf, _result: _stored(inf) == NEW_VALUE,
    ),
    "read": Operation(
        "GET", True, lambda p, id_: p.read(id_, dict(PROPS)), lambda _inf, result: result.outs["value"] == VALUE
    ),
    "delete": Operation(
        "DELETE", True, lambda p, id_: p.delete(id_, dict(PROPS)), lambda inf, _r: _stored(inf) is None
    ),
}
OPS = [pytest.param(name, id=name) for name in OPERATIONS]


def _ready(infisical: InfisicalFixture, op: Operation) -> tuple[InfisicalSecretValueProvider, str, int]:
    """A provider logged in, with the project id and folders known (so the operation is one request),
    the secret there if the operation needs it; and where the double's log stands."""
    provider = infisical.provider()
    provider.create({**PROPS, "key": "WARMUP"})
    id_ = provider.create(dict(PROPS)).id if op.exists_before else ""
    assert infisical.double.logins() == 1
    return provider, id_, len(infisical.double.answers)


def _no_secret_in(message: str, double: InfisicalDouble) -> None:
    for secret in (VALUE, NEW_VALUE, WRITER[1], *double.tokens):
        assert secret not in message


# --- one re-login, one retry --------------------------------------------------------------


@pytest.mark.parametrize(("stage", "refusal"), STAGES)
@pytest.mark.parametrize("operation", OPS)
def test_a_token_no_longer_good_means_one_new_login_and_one_retry(
    infisical: InfisicalFixture, operation: str, stage: str, refusal: tuple[int, str, str]
) -> None:
    op = OPERATIONS[operation]
    provider, id_, start = _ready(infisical, op)
    infisical.double.expire_tokens(stage)
    result = op.run(provider, id_)
    assert op.done(infisical, result)
    kind = f"{op.method} {SECRET_ROUTE}"
    status, message, _error = refusal
    assert infisical.double.answers[start:] == [(kind, status, message), (LOGIN_KIND, 200, None), (kind, 200, None)]
    assert infisical.double.logins() == 2


@pytest.mark.parametrize(
    ("age", "refusal"),
    [(3.6, TTL_EXPIRED), (6.0, JWT_EXPIRED)],
    ids=["3.6s-past-ttl-401", "6s-past-max-ttl-403"],
)
def test_tokens_age_on_the_clock_as_the_recorded_identity_s_did(
    infisical: InfisicalFixture, age: float, refusal: tuple[int, str, str]
) -> None:
    """The recorded identity (accessTokenTTL 3 s, accessTokenMaxTTL 5 s), on the double's clock:
    the token the provider holds expires by itself, and the next read logs in again once."""
    infisical.double.add_identity(*WRITER, access_token_ttl=3, access_token_max_ttl=5)
    provider, id_, start = _ready(infisical, OPERATIONS["read"])
    infisical.double.advance(age)
    result = provider.read(id_, dict(PROPS))
    assert result.outs is not None and result.outs["value"] == VALUE
    kind = f"GET {SECRET_ROUTE}"
    assert infisical.double.answers[start:] == [
        (kind, refusal[0], refusal[1]),
        (LOGIN_KIND, 200, None),
        (kind, 200, None),
    ]
    assert infisical.double.logins() == 2


# --- refused again: one error, a bounded number of requests ----------------------------------


def _rotate_the_secret(double: InfisicalDouble, _stage: str) -> None:
    double.identities[WRITER[0]].secret = "rotated-client-secret-canary"


def _delete_the_identity(double: InfisicalDouble, _stage: str) -> None:
    del double.identities[WRITER[0]]


def _every_new_token_stale(double: InfisicalDouble, stage: str) -> None:
    """Each login's token is already in ``stage`` when it is first used."""
    original = double.handle

    def expire_after_login(method: str, target: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        answer = original(method, target, headers, body)
        if target.startswith(LOGIN) and answer is not None and answer[0] == 200:
            double.expire_tokens(stage)
        return answer

    double.handle = expire_after_login  # type: ignore[method-assign]


REFUSALS = [
    pytest.param(
        _rotate_the_secret, (401, "Invalid credentials"), 2,
        r"refused the access token \(HTTP {status} .*\): Infisical at .* refused machine identity "
        r"writer-client-id: wrong client secret \(HTTP 401 UnauthorizedError: Invalid credentials\)",
        id="relogin-wrong-secret-401",
    ),
    pytest.param(
        _delete_the_identity, (404, "No identity with specified client ID was found"), 2,
        r"refused the access token \(HTTP {status} .*\): Infisical at .* refused machine identity "
        r"writer-client-id: no identity has this client id \(HTTP 404 NotFound",
        id="relogin-identity-gone-404",
    ),
    pytest.param(
        _every_new_token_stale, None, 3,
        r"Infisical at .* refused the access token of machine identity writer-client-id again right after a new "
        r"login \(HTTP {status} ",
        id="new-token-refused-too",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("refuse", "login_answer", "requests", "message"), REFUSALS)
@pytest.mark.parametrize(("stage", "refusal"), STAGES)
@pytest.mark.parametrize("operation", OPS)
def test_a_refused_relogin_is_one_error_naming_the_identity_and_the_status(
    infisical: InfisicalFixture,
    operation: str,
    stage: str,
    refusal: tuple[int, str, str],
    refuse: Callable[[InfisicalDouble, str], None],
    login_answer: tuple[int, str] | None,
    requests: int,
    message: str,
) -> None:
    op = OPERATIONS[operation]
    provider, id_, start = _ready(infisical, op)
    before = _stored(infisical)
    infisical.double.expire_tokens(stage)
    refuse(infisical.double, stage)
    with pytest.raises(InfisicalError, match=message.format(status=refusal[0])) as caught:
        op.run(provider, id_)
    _no_secret_in(str(caught.value), infisical.double)
    answers = infisical.double.answers[start:]
    assert len(answers) == requests  # the operation, one login, (the retry): no loop
    assert infisical.double.logins() == 2
    kind = f"{op.method} {SECRET_ROUTE}"
    assert answers[0] == (kind, refusal[0], refusal[1])
    assert answers[1] == (LOGIN_KIND, *(login_answer or (200, None)))
    assert _stored(infisical) == before  # nothing written, nothing deleted


# --- other 401s are not about the token ---------------------------------------------------


def test_a_wrong_client_secret_at_the_first_login_is_one_request(infisical: InfisicalFixture) -> None:
    with pytest.raises(InfisicalError, match=r"refused machine identity writer-client-id: wrong client secret "
                       r"\(HTTP 401 UnauthorizedError: Invalid credentials\)") as caught:  # fmt: skip
        infisical.provider((WRITER[0], "wrong-secret-canary")).create(dict(PROPS))
    assert "wrong-secret-canary" not in str(caught.value) and VALUE not in str(caught.value)
    assert infisical.double.answers == [(LOGIN_KIND, 401, "Invalid credentials")]


def test_a_401_validation_failure_is_a_refusal_not_a_new_login(infisical: InfisicalFixture) -> None:
    """The server answers a body its validation refuses with 401 too (recorded): that is no token problem."""
    conn = connect(Credentials(infisical.double.url, *WRITER))
    project_id = conn.project_id("floe-platform")
    with pytest.raises(Refused) as caught:
        conn.call(
            "rename without a value",
            lambda c: c.api.patch(
                path="/api/v3/secrets/raw/SNOWFLAKE_PASSWORD",
                json={"workspaceId": project_id, "environment": "dev", "secretPath": "/"},
                model=dict,
            ),
        )
    assert caught.value.status == 401 and not isinstance(caught.value, TokenExpired)
    assert infisical.double.logins() == 1
    assert infisical.double.count()[f"PATCH {SECRET_ROUTE}"] == 1


def _api_error(status: int, message: Any, error: str) -> APIError:
    return APIError(str(message), status, {"statusCode": status, "message": message, "error": error})


@pytest.mark.parametrize(
    ("answer", "token_no_longer_good"),
    [
        (TTL_EXPIRED, True),
        (TOKEN_NOT_FOUND, True),
        (JWT_EXPIRED, True),
        (JWT_MALFORMED, True),
        ((401, "Invalid credentials", "UnauthorizedError"), False),
        ((401, "Token missing", "UnauthorizedError"), False),
        ((401, [{"path": ["secretValue"], "message": "Required"}], "ValidationFailure"), False),
        ((401, "No identity access token found", "ValidationFailure"), False),
        ((403, "No identity access token found", "PermissionDenied"), False),
        ((403, "You are not allowed to create on secrets", "PermissionDenied"), False),
    ],
    ids=[
        "401-past-ttl", "401-deleted", "403-past-max-ttl", "403-malformed", "401-wrong-secret", "401-token-missing",
        "401-validation", "401-message-but-other-error", "403-message-but-permission", "403-permission",
    ],
)  # fmt: skip
def test_classify_reads_the_token_answers(answer: tuple[int, Any, str], token_no_longer_good: bool) -> None:
    refused = classify(_api_error(*answer))
    assert isinstance(refused, TokenExpired) is token_no_longer_good
    assert refused.status == answer[0]
    if answer[2] == "PermissionDenied":
        assert isinstance(refused, PermissionDenied)
