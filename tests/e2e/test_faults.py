"""The dynamic provider against the real Infisical server under the real engine, when things go
wrong on the way (a proxy in front of the server makes them go wrong on request): expired tokens on
every operation, an answer lost after the server acted, a storm of 429s. Nothing is lost, every
`up` converges, and the next preview is empty. Steps run in order on one stack."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Pulumi, killed_up, unavailable
from harness.cluster import LocalCluster
from harness.fault_proxy import FaultProxy, Rule, fault_proxy
from harness.localenv import Infisical

pytestmark = pytest.mark.e2e

ENV = "dev"
PAST_TTL = 3.6  # seconds: the short-TTL identity's tokens live 3 s, at most 5 s
PAST_MAX_TTL = 6.0
SECRETS = r"^/api/v3/secrets/raw/"
RENEW = "Failed to renew MI access token due to TTL expiration"
GONE = "No identity access token found"
EXPIRED = "Your token has expired. Please re-authenticate."


@dataclass
class Faulty:
    pulumi: Pulumi
    proxy: FaultProxy
    infisical: Infisical
    chart_repo: str
    values: dict[str, str]

    @property
    def folder(self) -> str:
        return f"/{self.infisical.prefix}/faults"

    def write_manifest(self, keys: dict[str, Any]) -> None:
        manifest = {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": self.proxy.url,
                        "project_slug": self.infisical.project_slug,
                        "operator": {"chart_repo": self.chart_repo},
                    },
                }
            },
            "secrets": {"faulty": {"path": self.folder, "keys": keys}},
        }
        self.pulumi.write_manifest(yaml.safe_dump(manifest, sort_keys=False))

    def get(self, key: str) -> str | None:
        return self.infisical.get(ENV, self.folder, key)

    def set_user(self, value: str) -> None:
        self.values["USER"] = value
        self.pulumi.config_set("floe:secretValues.faulty.USER", value, secret=True, path=True)

    def refusals(self, since: int) -> list[tuple[int | None, str]]:
        return [(e.status, e.message) for e in self.proxy.log[since:] if e.status in (401, 403)]

    def logins(self, since: int) -> int:
        return sum(1 for e in self.proxy.log[since:] if e.path.startswith("/api/v1/auth/universal-auth/login"))


KEYS: dict[str, Any] = {"USER": {"config": True}, "PASSWORD": {"generate": {"length": 24}}}


@pytest.fixture(scope="module")
def faulty(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Faulty]:
    if infisical.short_ttl is None:
        unavailable("the Infisical server has no short-TTL identity (INFISICAL_SHORT_TTL_CLIENT_ID)")
    tmp = tmp_path_factory.mktemp("faults")
    # Stack dev, like the suite's other stacks: the namespaces it leaves (retained on destroy) carry
    # the stack's name in a label, which another stack name's server-side apply could not take over.
    pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig)
    with fault_proxy(infisical.host) as proxy:
        stack = Faulty(pulumi, proxy, infisical, chart_repo, {})
        stack.write_manifest(KEYS)
        short = Infisical(proxy.url, infisical.project_slug, infisical.short_ttl, infisical.viewer, infisical.prefix)
        pulumi.init(short.stack_config(ENV, "floe-local"))
        stack.set_user(f"user-{secrets.token_hex(6)}")
        try:
            yield stack
        finally:
            pulumi.destroy(remove=True, check=False)


@pytest.mark.parametrize(
    ("step", "method", "hold", "refusal"),
    [
        ("create", "POST", PAST_TTL, (401, RENEW)),
        ("refresh", "GET", PAST_TTL, (401, RENEW)),
        ("update", "PATCH", PAST_MAX_TTL, (403, EXPIRED)),
        ("update", "PATCH", PAST_TTL, (401, RENEW)),
    ],
    ids=["create-past-ttl", "refresh-past-ttl", "update-past-max-ttl", "update-past-ttl"],
)
def test_1_an_expired_token_means_one_new_login_on_every_operation(
    faulty: Faulty, step: str, method: str, hold: float, refusal: tuple[int, str]
) -> None:
    """The first request to the secrets routes is held until the token is past its TTL (the
    server then answers 401) or its max TTL (403): one new login, the request again, done."""
    since = len(faulty.proxy.log)
    faulty.proxy.add(Rule(method, SECRETS, "hold", seconds=hold))
    if step == "create":
        faulty.pulumi.up()
    elif step == "refresh":
        faulty.pulumi.refresh(expect_no_changes=True)
    else:
        faulty.set_user(f"user-{secrets.token_hex(6)}")
        faulty.pulumi.up()
    refused = faulty.refusals(since)
    assert refused and refused[0] == refusal, refused
    assert all(r in ((401, RENEW), (401, GONE), (403, EXPIRED)) for r in refused), refused
    assert faulty.logins(since) >= 2, "no new login after the refusal"
    assert faulty.get("USER") == faulty.values["USER"]
    assert faulty.get("PASSWORD") is not None
    faulty.pulumi.preview(expect_no_changes=True)


def test_2_a_rename_whose_answer_was_lost_converges(faulty: Faulty) -> None:
    """The PATCH that renames a key reaches the server, which renames it; its answer is lost. The
    retry finds the old name gone and the new one holding the value: `up` succeeds."""
    password = faulty.get("PASSWORD")
    faulty.proxy.add(Rule("PATCH", SECRETS + "PASSWORD", "lose-answer"))
    faulty.write_manifest(
        {"USER": KEYS["USER"], "DB_PASSWORD": {"renamed_from": "PASSWORD", "generate": {"length": 24}}}
    )
    faulty.pulumi.up()
    assert [e.fault for e in faulty.proxy.log].count("lose-answer") == 1
    assert faulty.get("DB_PASSWORD") == password and faulty.get("PASSWORD") is None
    faulty.pulumi.preview(expect_no_changes=True)
    faulty.pulumi.refresh(expect_no_changes=True)


def test_3_a_storm_of_429s_is_waited_out_with_bounded_requests(faulty: Faulty) -> None:
    since = len(faulty.proxy.log)
    faulty.proxy.add(Rule("PATCH", SECRETS, "answer", times=5, status=429))
    faulty.set_user(f"user-{secrets.token_hex(6)}")
    faulty.pulumi.up()
    assert faulty.get("USER") == faulty.values["USER"]
    patches = faulty.proxy.count("PATCH", SECRETS)
    assert [e.fault for e in faulty.proxy.log[since:]].count("answer") == 5
    assert len(faulty.proxy.log) - since <= 15, f"{len(faulty.proxy.log) - since} requests for one update"
    assert patches >= 6
    faulty.pulumi.preview(expect_no_changes=True)


def test_4_infisical_going_down_mid_up_fails_clearly_and_the_next_up_converges(faulty: Faulty) -> None:
    """Three new keys; the server becomes unreachable after the first is written. `up` fails within
    the provider's deadline (120 s per operation), one error per key it could not write; once the
    server is back, `up` writes exactly the missing ones: no duplicate, no orphan, nothing lost."""
    before = {k: faulty.get(k) for k in ("USER", "DB_PASSWORD")}
    new = {f"TOKEN_{i}": {"generate": {"length": 20}} for i in range(3)}
    faulty.write_manifest({"USER": KEYS["USER"], "DB_PASSWORD": {"generate": {"length": 24}}, **new})
    faulty.proxy.down_after, faulty.proxy._arrived = ("POST", SECRETS, 1), 0
    try:
        failed = faulty.pulumi.up(check=False, timeout=400)
    finally:
        faulty.proxy.down_after, faulty.proxy.down = None, False
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "Traceback" not in output
    failed_keys = set(re.findall(r"could not create key (TOKEN_\d) .*Infisical at \S+ kept failing for 120s", output))
    written = faulty.infisical.keys(ENV, faulty.folder)
    assert failed_keys and failed_keys.isdisjoint(written) and failed_keys | written >= set(new), output[-3000:]
    faulty.pulumi.up()
    keys = faulty.infisical.keys(ENV, faulty.folder)
    assert keys == {"USER", "DB_PASSWORD", *new}, keys
    assert {k: faulty.get(k) for k in before} == before
    faulty.pulumi.preview(expect_no_changes=True)


def test_5_a_killed_up_recovers_with_refresh_and_up_and_keeps_the_value(faulty: Faulty) -> None:
    """`pulumi up` killed (SIGKILL, the whole process group) after Infisical created a new key and
    before the state recorded it. The README's recovery, `pulumi cancel` (if a lock was left),
    `pulumi refresh --clear-pending-creates`, `pulumi up`, converges: the key keeps the value
    written before the kill, and the next preview is empty."""
    manifest = yaml.safe_load((faulty.pulumi.project / "manifest.yaml").read_text())
    keys = manifest["secrets"]["faulty"]["keys"]
    faulty.write_manifest({**keys, "KILLED": {"generate": {"length": 20}}})
    faulty.proxy.add(Rule("POST", SECRETS + "KILLED", "hold-answer", seconds=60))
    killed_up(
        faulty.pulumi,
        lambda: faulty.proxy.count("POST", SECRETS + "KILLED") > 0,
        "the create of KILLED reached Infisical",
    )
    written = faulty.get("KILLED")
    assert written is not None, "Infisical did not get the key before the kill"
    assert "pending_operations" in faulty.pulumi.state()
    faulty.pulumi.cancel()
    faulty.pulumi.refresh(clear_pending_creates=True)
    result = faulty.pulumi.up()
    assert "already carried this stack's mark" in result.stdout + result.stderr
    assert faulty.get("KILLED") == written
    faulty.pulumi.preview(expect_no_changes=True)


def test_5_adopt_takes_over_a_key_set_by_hand_at_create_only(faulty: Faulty) -> None:
    """`adopt: true` (the documented way to take over an existing key; `pulumi import` cannot load a
    dynamic provider): the key becomes the stack's, and nothing of it stays in the state."""
    faulty.infisical.set(ENV, faulty.folder, "ADOPTED", "set-by-hand")
    manifest = yaml.safe_load((faulty.pulumi.project / "manifest.yaml").read_text())
    keys = manifest["secrets"]["faulty"]["keys"]
    faulty.pulumi.config_set("floe:secretValues.faulty.ADOPTED", "from-the-stack", secret=True, path=True)
    faulty.write_manifest({**keys, "ADOPTED": {"config": True, "adopt": True}})
    faulty.pulumi.up()
    assert faulty.get("ADOPTED") == "from-the-stack"
    state = faulty.pulumi.resources()
    (adopted,) = [r for r in state if r["urn"].endswith(":ADOPTED") and "SecretValue" in r["type"]]
    assert "adopt" not in adopted["outputs"]
    faulty.write_manifest({**keys, "ADOPTED": {"config": True}})
    faulty.pulumi.preview(expect_no_changes=True)


def test_6_destroy_with_an_expired_token_removes_what_the_stack_wrote(faulty: Faulty) -> None:
    since = len(faulty.proxy.log)
    faulty.proxy.add(Rule("DELETE", SECRETS, "hold", seconds=PAST_TTL))
    faulty.pulumi.destroy()
    assert faulty.refusals(since)[:1] == [(401, RENEW)]
    assert faulty.get("USER") is None and faulty.get("DB_PASSWORD") is None
    assert faulty.get("ADOPTED") is None, "an adopted key is the stack's, and goes with it"
