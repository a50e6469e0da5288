"""A key whose project or folder no longer exists, through the real infisicalsdk against the double.

The real server answers a lookup by slug of a project that does not exist **500** (GET
/api/v2/workspace/{slug}, a secret read by ``workspaceSlug``) and 404 "Project with slug '...' not
found" on GET /api/v1/projects/slug/{slug} (recordings/infisical-gone-recordings.json, which the
double answers as recorded). So the first 500 of such a lookup asks the v1 route once: a gone
project is known at once, never waited out as an outage; delete succeeds with a warning, refresh
drops the key. A 500 for a project that is there (v1 answers 200), or on a server without the v1
route, is retried as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
from infisical_double import Fault
from support import FAST, InfisicalFixture

from floe_infra.clients.errors import InfisicalError
from floe_infra.clients.infisical import forget_connections
from floe_infra.clients.transport import RetryPolicy

PROPS: dict[str, Any] = {
    "project_slug": "floe-platform",
    "environment": "dev",
    "path": "/compute/snowflake",
    "key": "SNOWFLAKE_PASSWORD",
    "value": "value-canary-9c1d",
    "comment": "",
}
LOGIN = "POST /api/v1/auth/universal-auth/login"
V2 = "GET /api/v2/workspace/floe-platform"
V1 = "GET /api/v1/projects/slug/floe-platform"
GET = "GET /api/v3/secrets/raw/{name}"
DELETE = "DELETE /api/v3/secrets/raw/{name}"
PROJECT_GONE = "has no project floe-platform any more, so the key is gone with it"
PATIENT = RetryPolicy(timeout=0.5, deadline=30.0, backoff=0.01, max_backoff=0.02)
"""Retries for 30 s: a test that would wait out an outage cannot pass in under a second."""


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the provider says with ``pulumi.log.warn`` (in a dynamic provider: a warning line on
    its stderr, which the Pulumi CLI shows)."""
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *_, **__: said.append(msg))
    yield said


def _remove_project(infisical: InfisicalFixture) -> None:
    infisical.double.remove_project("floe-platform")


def _remove_folder(infisical: InfisicalFixture) -> None:
    """``/compute/snowflake`` deleted in Infisical (with its secrets); ``/compute`` stays."""
    double, pid = infisical.double, infisical.project.id
    double.folders.discard((pid, "dev", "/compute/snowflake"))
    double.secrets = {k: v for k, v in double.secrets.items() if k[:3] != (pid, "dev", "/compute/snowflake")}


@dataclass(frozen=True)
class Gone:
    """What went, whether the provider process is new (no project id cached), and the requests the
    operation makes after the create (by kind; every other kind: none)."""

    remove: Callable[[InfisicalFixture], None]
    fresh_process: bool
    delete_requests: dict[str, int]
    read_requests: dict[str, int]
    warned: bool


GONE = {
    # a new process looks the project up: v2 answers 500, v1 404, and no DELETE is sent
    "project-new-process": Gone(_remove_project, True, {LOGIN: 1, V2: 1, V1: 1}, {LOGIN: 1, GET: 1, V1: 1}, True),
    # the project id cached from before it went: the DELETE itself is answered 404 (bot lookup)
    "project-cached-id": Gone(_remove_project, False, {DELETE: 1}, {GET: 1, V1: 1}, True),
    "folder-new-process": Gone(_remove_folder, True, {LOGIN: 1, V2: 1, DELETE: 1}, {LOGIN: 1, GET: 1}, False),
    "folder-cached-id": Gone(_remove_folder, False, {DELETE: 1}, {GET: 1}, False),
}


def _created_then_gone(infisical: InfisicalFixture, gone: Gone) -> Any:
    """A provider that created the key, then the project or folder removed in Infisical; the double's
    request log restarts there."""
    provider = infisical.provider(policy=PATIENT)
    provider.create(dict(PROPS))
    gone.remove(infisical)
    if gone.fresh_process:
        forget_connections()
        provider = infisical.provider(policy=PATIENT)
    infisical.double.requests.clear()
    return provider


def _timed(operation: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = operation()
    return result, time.monotonic() - start


@pytest.mark.parametrize("gone", GONE.values(), ids=GONE.keys())
def test_delete_succeeds_when_the_project_or_folder_is_gone(
    infisical: InfisicalFixture, warnings: list[str], gone: Gone
) -> None:
    provider = _created_then_gone(infisical, gone)
    _, took = _timed(lambda: provider.delete("id", dict(PROPS)))
    assert dict(infisical.double.count()) == gone.delete_requests
    assert took < 0.5, f"took {took:.1f}s: retried as an outage"
    if gone.warned:
        (warning,) = warnings
        assert warning.startswith("key SNOWFLAKE_PASSWORD in project floe-platform, environment dev, path ")
        assert PROJECT_GONE in warning and "delete has nothing to do" in warning
        assert infisical.double.url in warning and PROPS["value"] not in warning
    else:
        assert warnings == []


@pytest.mark.parametrize("gone", GONE.values(), ids=GONE.keys())
def test_refresh_drops_a_key_whose_project_or_folder_is_gone(
    infisical: InfisicalFixture, warnings: list[str], gone: Gone
) -> None:
    provider = _created_then_gone(infisical, gone)
    result, took = _timed(lambda: provider.read("id", dict(PROPS)))
    assert (result.id, result.outs) == ("", {})  # as for a key deleted on its own
    assert dict(infisical.double.count()) == gone.read_requests
    assert took < 0.5, f"took {took:.1f}s: retried as an outage"
    assert [PROJECT_GONE in w and "refresh drops it from the state" in w for w in warnings] == (
        [True] if gone.warned else []
    )


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (lambda p: p.create(dict(PROPS)), r"^Infisical at \S+ has no project floe-platform \(404 NotFound: "
                                          r"Project with slug 'floe-platform' not found\); check the project slug"),
        (lambda p: p.update("id", dict(PROPS), {**PROPS, "value": "v2"}), r"has no project floe-platform"),
    ],
    ids=["create", "update"],
)  # fmt: skip
def test_writes_to_a_project_that_is_gone_fail_at_once_naming_it(
    infisical: InfisicalFixture, operation: Callable[[Any], Any], message: str
) -> None:
    _remove_project(infisical)
    provider = infisical.provider(policy=PATIENT)
    start = time.monotonic()
    with pytest.raises(InfisicalError, match=message):
        operation(provider)
    assert time.monotonic() - start < 0.5
    assert dict(infisical.double.count()) == {LOGIN: 1, V2: 1, V1: 1}


@pytest.mark.parametrize(
    ("operation", "faulty", "requests"),
    [
        (lambda p: p.delete("id", dict(PROPS)), "/api/v2/workspace/", {LOGIN: 1, V2: 3, V1: 1, DELETE: 1}),
        (lambda p: p.read("id", dict(PROPS)), "/api/v3/secrets/raw/", {LOGIN: 1, GET: 3, V1: 1}),
    ],
    ids=["delete", "read"],
)
def test_a_500_for_a_project_that_is_there_is_retried_as_before(
    infisical: InfisicalFixture,
    warnings: list[str],
    operation: Callable[[Any], Any],
    faulty: str,
    requests: dict[str, int],
) -> None:
    """The v1 lookup answers 200: the 500 was a fault, retried (v1 asked once, not per retry)."""
    infisical.provider().create(dict(PROPS))
    forget_connections()
    infisical.double.requests.clear()
    infisical.double.inject(Fault(status=500, times=2, path=faulty))
    result = operation(infisical.provider())
    assert dict(infisical.double.count()) == requests
    assert warnings == []
    if result is not None:  # the read: the value, not "gone"
        assert result.id == "id" and result.outs["value"] == PROPS["value"]
    else:
        assert infisical.double.value(infisical.project, "dev", PROPS["path"], PROPS["key"]) is None


def test_a_server_without_the_v1_lookup_keeps_retrying_as_before(
    infisical: InfisicalFixture, warnings: list[str]
) -> None:
    """No GET /api/v1/projects/slug/{slug} (a route-not-found 404): the 500 cannot be told from an
    outage, so it is retried to the deadline, as before this route was asked."""
    provider = infisical.provider(policy=FAST)
    provider.create(dict(PROPS))
    _remove_project(infisical)
    infisical.double.project_slug_route = False
    forget_connections()
    infisical.double.requests.clear()
    with pytest.raises(InfisicalError, match=r"could not look up project floe-platform: .* kept failing for 2s"):
        infisical.provider(policy=FAST).delete("id", dict(PROPS))
    counts = infisical.double.count()
    assert counts[V1] == 1 and counts[V2] > 2 and counts[DELETE] == 0
    assert warnings == []
