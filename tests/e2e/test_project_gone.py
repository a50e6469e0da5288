"""A project deleted in Infisical under a stack that wrote into it: `pulumi refresh` would drop its
values, with a warning, and `pulumi destroy` finishes, both at once (the server answers a lookup of a
deleted project with a 500, which must not be retried as an outage)."""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Pulumi, unavailable
from harness.cluster import LocalCluster
from harness.localenv import Infisical, env_file, server_state

pytestmark = pytest.mark.e2e


def admin_call(host: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        host + path,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


def test_a_deleted_project_is_gone_for_refresh_and_destroy_at_once(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path: Path,
) -> None:
    if os.environ.get("FLOE_E2E_INFISICAL_ENV"):
        pytest.skip("needs the admin of the local Infisical server (admin.env), not FLOE_E2E_INFISICAL_ENV's server")
    admin_file = server_state() / "admin.env"
    if not admin_file.exists():
        unavailable(f"the local Infisical server's {admin_file} is missing")
    admin = env_file(admin_file)
    host, jwt = infisical.host, admin["INFISICAL_ADMIN_JWT"]
    slug = f"e2e-gone-{secrets.token_hex(4)}"
    project = admin_call(host, jwt, "POST", "/api/v2/workspace", {"projectName": slug, "slug": slug})["project"]
    admin_call(
        host,
        jwt,
        "POST",
        f"/api/v2/workspace/{project['id']}/identity-memberships/{admin['INFISICAL_WRITER_IDENTITY_ID']}",
        {"role": "member"},
    )
    deleted = False
    pulumi = Pulumi.on_copy(tmp_path, tools_bin, cluster.kubeconfig)
    try:
        pulumi.write_manifest(
            yaml.safe_dump(
                {
                    "plugins": {
                        "secrets": {
                            "type": "infisical",
                            "config": {"site_url": host, "project_slug": slug, "operator": {"chart_repo": chart_repo}},
                        }
                    },
                    "secrets": {"doomed": {"path": "/doomed", "keys": {"TOKEN": {"generate": {"length": 16}}}}},
                }
            )
        )
        pulumi.init(infisical.stack_config("dev", "floe-local"))
        pulumi.up()
        where = Infisical(host, slug, infisical.writer, infisical.viewer, "")
        assert where.get("dev", "/doomed", "TOKEN") is not None
        admin_call(host, jwt, "DELETE", f"/api/v2/workspace/{slug}")
        deleted = True
        start = time.monotonic()
        refreshed = pulumi.refresh(preview_only=True)
        output = refreshed.stdout + refreshed.stderr
        assert time.monotonic() - start < 60, "the refresh waited out retries"
        assert f"has no project {slug} any more" in output and "/doomed:TOKEN" in output, output[-3000:]
        start = time.monotonic()
        destroyed = pulumi.destroy()
        assert time.monotonic() - start < 90, "the destroy waited out retries"
        assert f"has no project {slug} any more" in destroyed.stdout + destroyed.stderr
    finally:
        pulumi.destroy(remove=True, check=False)
        if not deleted:
            admin_call(host, jwt, "DELETE", f"/api/v2/workspace/{slug}")
