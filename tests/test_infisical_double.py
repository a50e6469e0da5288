"""The Infisical double answers every recorded exchange as the real server did.

Replays ../shared/reference/infisical-api-recordings.json and infisical-token-expiry-recordings.json,
and recordings/infisical-gone-recordings.json (kept in this repository), each in order against a
fresh double: same status, the same error body, and success bodies with the same fields (ids and
times aside).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from infisical_double import DoubleServer, InfisicalDouble
from support import WRITER, reference_file

PLACEHOLDER_FREE = {"statusCode", "message", "error"}


def _exchanges(name: str = "infisical-api-recordings.json") -> list[dict[str, Any]]:
    return list(json.loads(reference_file(name).read_text())["exchanges"])


def _substitute(value: Any, project_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, project_id) for k, v in value.items()}
    return project_id if value == "<project-id>" else value


def _shape(body: Any) -> Any:
    """Field names all the way down, so success bodies compare without ids and timestamps."""
    if isinstance(body, dict):
        return {k: _shape(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_shape(v) for v in body[:1]]
    return type(body).__name__ if body is not None else None


def _differs(case: str, status: int, got: Any, expected: dict[str, Any]) -> str | None:
    """How the double's answer differs from the recorded one: status, error bodies exactly,
    success bodies by their fields (ids and times differ); None when it does not."""
    if status != expected["status"]:
        return f"{case}: status {status}, recorded {expected['status']}"
    if expected["status"] >= 400 and got != expected["body"]:
        return f"{case}: body {got}, recorded {expected['body']}"
    if expected["status"] < 400 and _shape(got) != _shape(expected["body"]):
        return f"{case}: fields {_shape(got)}, recorded {_shape(expected['body'])}"
    return None


def test_the_double_answers_like_the_recorded_server() -> None:
    exchanges = _exchanges()
    double = InfisicalDouble()
    double.add_identity(*WRITER)
    double.add_identity("reader", "reader-secret", can_write=False)
    project = double.add_project("acceptance-project")
    stale = double.token_for(WRITER[0])
    double.expire_tokens()  # past its max TTL: the only token issued so far
    writer, reader = double.token_for(WRITER[0]), double.token_for("reader")
    auth = {
        "request with no token": None,
        "request with a malformed token": "not-a-token",
        "request with an expired token": stale,
        "read-only identity creates a secret": reader,
    }
    logins = {
        "login": WRITER,
        "login with a wrong client secret": (WRITER[0], "wrong"),
        "login with an unknown client id": ("unknown", "x"),
    }
    mismatches = []
    with DoubleServer(double):
        for ex in exchanges:
            req, case = ex["request"], ex["case"]
            body = _substitute(req["body"], project.id)
            if case in logins:
                body = {"clientId": logins[case][0], "clientSecret": logins[case][1]}
            token = auth.get(case, writer)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if "headers" in req:  # recorded headers, the expired token made a real expired one
                headers = {k: v.replace("<expired access token>", stale) for k, v in req["headers"].items()}
                body = {"clientId": WRITER[0], "clientSecret": WRITER[1]}
            answer = requests.request(
                req["method"], double.url + req["path"], params=req["query"], json=body, headers=headers, timeout=5
            )
            expected = ex["response"]
            got = answer.json()
            if mismatch := _differs(case, answer.status_code, got, expected):
                mismatches.append(mismatch)
    assert mismatches == []
    assert len(exchanges) == 28


@pytest.mark.parametrize("field", ["secretKey", "secretValue", "environment", "version"])
def test_secret_fields_match_the_recording(field: str) -> None:
    """Beyond shape: the values a provider reads back (key, value, env, version) come out as recorded."""
    recorded = {ex["case"]: ex for ex in _exchanges()}
    double = InfisicalDouble()
    double.add_identity(*WRITER)
    project = double.add_project("acceptance-project")
    token = double.token_for(WRITER[0])
    with DoubleServer(double):
        for case in ("create folder", "create nested folder", "create secret", "get secret", "update secret"):
            req = recorded[case]["request"]
            answer = requests.request(
                req["method"], double.url + req["path"], params=req["query"],
                json=_substitute(req["body"], project.id), headers={"Authorization": f"Bearer {token}"}, timeout=5,
            )  # fmt: skip
            if "secret" in recorded[case]["response"]["body"]:
                assert answer.json()["secret"][field] == recorded[case]["response"]["body"]["secret"][field]


EXPIRY = "infisical-token-expiry-recordings.json"
TOKEN_PLACEHOLDER = re.compile(r"<[a-z0-9-]*access-token[a-z0-9-]*>")


def _lifetimes() -> tuple[int, int]:
    """accessTokenTTL and accessTokenMaxTTL of the identity the expiry recordings used (their "source")."""
    source = json.loads(reference_file(EXPIRY).read_text())["source"]
    ttl = re.search(r"accessTokenTTL=(\d+) s", source)
    max_ttl = re.search(r"accessTokenMaxTTL=(\d+) s", source)
    assert ttl and max_ttl, source
    return int(ttl.group(1)), int(max_ttl.group(1))


def test_the_double_expires_tokens_like_the_recorded_server() -> None:
    """Both stages of expiry, renew, and a login that still carries an expired bearer token, in the
    recorded order. The double's clock stands where the recording's cases say ("3.6 s after login"),
    and each placeholder token is the one the double issued at the login that recorded it."""
    exchanges = _exchanges(EXPIRY)
    ttl, max_ttl = _lifetimes()
    double = InfisicalDouble()
    double.add_identity(*WRITER, access_token_ttl=ttl, access_token_max_ttl=max_ttl)
    project = double.add_project("expiry-project")
    tokens: dict[str, str] = {}  # recorded placeholder -> the token the double issued
    logged_in_at = 0.0

    def real(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: real(v) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        fixed = {"<project-id>": project.id, "<client-id>": WRITER[0], "<client-secret>": WRITER[1]}
        if value in fixed:
            return fixed[value]
        for placeholder in TOKEN_PLACEHOLDER.findall(value):
            assert placeholder in tokens, f"{placeholder} used before a login issued it"
            value = value.replace(placeholder, tokens[placeholder])
        return value

    mismatches, replayed = [], 0
    with DoubleServer(double):
        for ex in exchanges:
            req, case, expected = ex["request"], ex["case"], ex["response"]
            after = re.search(r"(\d+(?:\.\d+)?) s after login", case)
            if after:
                double.advance(logged_in_at + float(after.group(1)) - double.clock)
            answer = requests.request(
                req["method"], double.url + req["path"], params=real(req["query"]), json=real(req["body"]),
                headers=real(req.get("headers", {})), timeout=5,
            )  # fmt: skip
            replayed += 1
            got = answer.json()
            recorded_token = expected["body"].get("accessToken")
            if expected["status"] == 200 and req["path"].endswith("/login") and recorded_token:
                assert recorded_token not in tokens, f"{case}: {recorded_token} issued twice"
                tokens[recorded_token] = got.get("accessToken")
                logged_in_at = double.clock
            if mismatch := _differs(case, answer.status_code, got, expected):
                mismatches.append(mismatch)
            elif recorded_token and got != real(expected["body"]):  # the same token back, the same lifetimes
                mismatches.append(f"{case}: body {got}, recorded {expected['body']}")
    assert mismatches == []
    assert replayed == len(exchanges) == 19
    assert double.logins() == 5


GONE = Path(__file__).resolve().parent / "recordings" / "infisical-gone-recordings.json"


def test_the_double_answers_like_the_recorded_server_when_the_project_or_folder_is_gone() -> None:
    """A project or folder that does not exist: the 500 of a lookup by slug, the 404 of the v1
    lookup, a route the server lacks, and every secrets route by id, by slug, and in a missing folder."""
    recorded = json.loads(GONE.read_text())
    exchanges: list[dict[str, Any]] = recorded["exchanges"]
    double = InfisicalDouble()
    double.add_identity(*WRITER)
    project = double.add_project("floe-infra")  # the real slug the recordings name
    placeholders = {"<project-id>": project.id, "<unknown-project-id>": str(uuid.uuid4())}

    def real(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: real(v) for k, v in value.items()}
        return placeholders.get(value, value) if isinstance(value, str) else value

    token = double.token_for(WRITER[0])
    mismatches, replayed = [], 0
    with DoubleServer(double):
        for ex in exchanges:
            req, case, expected = ex["request"], ex["case"], ex["response"]
            body = real(req["body"])
            headers = {"Authorization": f"Bearer {token}"}
            if req["path"].endswith("/login"):
                body, headers = {"clientId": WRITER[0], "clientSecret": WRITER[1]}, {}
            answer = requests.request(
                req["method"], double.url + req["path"], params=real(req["query"]), json=body, headers=headers,
                timeout=5,
            )  # fmt: skip
            replayed += 1
            got = answer.json()
            if mismatch := _differs(case, answer.status_code, got, expected):
                mismatches.append(mismatch)
    assert mismatches == []
    assert replayed == len(exchanges) == 17
    assert "writer" in recorded["source"] and "member" in recorded["source"]


def test_a_double_without_the_v1_project_route_answers_it_as_an_unknown_route() -> None:
    """An older server (no GET /api/v1/projects/slug/{slug}): the route-not-found 404 recorded for a
    route the server lacks, which says nothing about the project."""
    (unknown,) = [
        ex for ex in json.loads(GONE.read_text())["exchanges"] if ex["case"] == "a route this server does not have"
    ]
    double = InfisicalDouble(project_slug_route=False)
    double.add_identity(*WRITER)
    token = double.token_for(WRITER[0])
    path = "/api/v1/projects/slug/floe-gone-project"
    with DoubleServer(double):
        answer = requests.get(double.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    expected = unknown["response"]["body"]
    assert answer.status_code == unknown["response"]["status"] == 404
    assert answer.json() == {**expected, "message": expected["message"].replace(unknown["request"]["path"], path)}
