"""`make demo`: the main job end to end on local defaults. A local cluster, the real Infisical server,
the Infisical operator (out of cluster), and `pulumi up` of a `demo` stack of the example manifest
(file backend and passphrase of its own); then `floe secrets status` and one synced Secret's keys.

    python tools/demo.py up     # what `make demo` runs (after `make runtime install`); builds the tools
    python tools/demo.py up --kubernetes-auth   # `make demo AUTH=kubernetes`: the operator logs in
                                # with a ServiceAccount token (Infisical Kubernetes Auth); no client secret
    python tools/demo.py down   # `make demo-down`: destroys the stack, stops and removes what `up` made

Everything lives in .demo/ (git-ignored; FLOE_DEMO_DIR elsewhere); the Infisical server is
stopped by `down` only if `up` started it. No step is silent for more than about 10 seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from harness.cluster import ClusterError, LocalCluster
from harness.localenv import (
    Infisical,
    InfisicalAdmin,
    LocalEnvError,
    built_tools,
    chart_repository,
    env_file,
    pulumi_home,
    server_running,
    server_state,
    start_server,
    stop_server,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("FLOE_DEMO_DIR", ROOT / ".demo")).resolve()
STACK = "demo"
ENV = "dev"
HAND_SET = {"/compute/snowflake": "SNOWFLAKE_ACCOUNT", "/catalog/polaris": "POLARIS_TOKEN"}  # set "by a person"


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def run(
    label: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, show: bool = True
) -> str:
    """Runs ``cmd``, echoing its output (``show``) and a line every 10 s it is silent; its output."""
    started = time.monotonic()
    last = [started]
    lines: list[str] = []
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(1):
            if time.monotonic() - last[0] >= 10:
                say(f"... {label}: still running ({time.monotonic() - started:.0f}s)")
                last[0] = time.monotonic()

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if show:
            print("    " + line.rstrip(), flush=True)
            last[0] = time.monotonic()
    code = proc.wait()
    done.set()
    ticker.join()
    if code != 0:
        tail = "".join(lines[-30:]) if not show else ""
        raise SystemExit(f"demo: {label} failed (exit {code})\n{tail}")
    return "".join(lines)


def tools_bin(build: bool = False) -> Path:
    """The tools' bin directory; ``build``: `make tools` first (a no-op when they are built)."""
    script = str(ROOT / "tools" / "build.sh")
    if build:
        run("make tools (cold: about 30 minutes, see the README)", [script])
    path = built_tools()
    if path is None:
        raise SystemExit("demo: the tools are not built: run `make tools`")
    return path


def pulumi_env(bin_dir: Path, kubeconfig: Path) -> dict[str, str]:
    passphrase = DEMO / "passphrase"
    if not passphrase.exists():
        passphrase.write_text(secrets.token_urlsafe(24))
        passphrase.chmod(0o600)
    (DEMO / "backend").mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "HOME", "USER", "TERM")},
        "PATH": f"{bin_dir}:{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        **pulumi_home(bin_dir, DEMO / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{DEMO / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "KUBECONFIG": str(kubeconfig),
    }


OPERATOR_NS, AUTH_ACCOUNT = "infisical", "infisical-auth"  # the manifest's defaults


def project(infisical: Infisical, chart_repo: str, kubernetes_auth: bool) -> Path:
    """The program with the example manifest, pointed at the local server and chart repository."""
    path = DEMO / "project"
    path.mkdir(exist_ok=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, path / name)
    if not (path / "venv").exists():
        (path / "venv").symlink_to(ROOT / "venv")
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    config = manifest["plugins"]["secrets"]["config"]
    config.update(site_url=infisical.host, project_slug=infisical.project_slug, resync_interval="10s")
    config["operator"]["chart_repo"] = chart_repo
    if kubernetes_auth:
        config["operator"]["auth"] = "kubernetes"
    (path / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def kubernetes_identity(cluster: LocalCluster) -> str:
    """An identity that logs in with Kubernetes Auth, made by the local server's admin (as a person
    would in Infisical's UI): the server checks each login with TokenReview on the local cluster."""
    kept = DEMO / "kubernetes-identity"
    if kept.exists():
        return kept.read_text()
    server, ca = cluster.api_server()
    identity = InfisicalAdmin.from_state().kubernetes_identity(
        f"floe-demo-k8s-{secrets.token_hex(4)}",
        host=server,
        ca=ca,
        reviewer_jwt=cluster.token_reviewer_jwt(),
        namespace=OPERATOR_NS,
        service_account=AUTH_ACCOUNT,
    )
    kept.write_text(identity)
    return identity


def client_secret_holders(cluster: LocalCluster) -> tuple[int, list[str]]:
    """How many Secrets the cluster has, and which hold a client secret of the server's identities
    or a clientId/clientSecret key."""
    known = InfisicalAdmin.from_state().client_secrets()
    found = cluster.secrets()
    return len(found), [
        f"{ns}/{name}"
        for ns, name, data in found
        if known & set(data.values()) or {"clientId", "clientSecret"} & set(data)
    ]


def up(kubernetes_auth: bool = False) -> None:
    DEMO.mkdir(exist_ok=True)
    say("0/5 the tools: Pulumi CLI, language host and kubernetes provider, control plane, operator")
    bin_dir = tools_bin(build=True)
    say("1/5 local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok) on 127.0.0.1")
    cluster = LocalCluster(DEMO / "cluster", bin_dir)
    try:
        cluster.up()
    except ClusterError as exc:
        raise SystemExit(f"demo: the local cluster did not start: {exc}") from exc
    say("2/5 the real Infisical server (../shared/infisical-server/up.sh; the first time builds it)")
    state = server_state()
    if not server_running(state):
        (DEMO / "started-infisical").write_text(str(state))
    try:
        credentials = start_server(state, output=None)
    except LocalEnvError as exc:
        raise SystemExit(f"demo: {exc}") from exc
    infisical = Infisical.from_credentials(credentials, prefix="")
    identity = None
    if kubernetes_auth:
        try:
            identity = kubernetes_identity(cluster)
        except LocalEnvError as exc:
            raise SystemExit(f"demo: {exc}") from exc
        say(
            f"    identity {identity} (project viewer) logs in with Kubernetes Auth: a token of ServiceAccount "
            f"{OPERATOR_NS}/{AUTH_ACCOUNT}, checked by TokenReview at {cluster.api_server()[0]}"
        )
    made = DEMO / "hand-set.json"  # what down removes: only keys this demo set
    ours = json.loads(made.read_text()) if made.exists() else {}
    for path, key in HAND_SET.items():
        if infisical.get(ENV, path, key) is None:
            infisical.set(ENV, path, key, f"demo-{key.lower()}-{secrets.token_hex(4)}")
            ours[path] = key
            made.write_text(json.dumps(ours))
    env = pulumi_env(bin_dir, cluster.kubeconfig)
    pulumi = [str(bin_dir / "pulumi"), "--non-interactive"]
    (DEMO / "charts").mkdir(exist_ok=True)
    with chart_repository(DEMO / "charts") as repo:
        cwd = project(infisical, repo, kubernetes_auth)
        say(f"3/5 pulumi up of stack '{STACK}' (the example manifest; state in .demo/backend)")
        run("pulumi stack", [*pulumi, "stack", "select", "--create", STACK], env, cwd, show=False)
        config = [
            c
            for c in infisical.stack_config(ENV, "floe-local")
            if not (identity and c[0].startswith("floe:operatorClient"))
        ]
        if identity:
            config.append(("floe:operatorIdentityId", identity, False))
        for key, value, secret in config:
            run(
                "pulumi config",
                [*pulumi, "config", "set", *(["--secret"] if secret else []), key, value],
                env,
                cwd,
                show=False,
            )
        user = "floe:secretValues.snowflake-credentials.SNOWFLAKE_USER"
        run("pulumi config", [*pulumi, "config", "set", "--secret", "--path", user, "demo-user"], env, cwd, show=False)
        run("pulumi up", [*pulumi, "up", "--yes", "--skip-preview", "--stack", STACK], env, cwd)
    say("4/5 the Infisical operator v0.11.5, out of cluster, syncing into the cluster's Secrets")
    log = cluster.start_operator()
    say(f"    its log: {log}")
    say("5/5 floe secrets status, until every reference is synced")
    floe = [str(ROOT / ".venv" / "bin" / "floe"), "secrets"]
    deadline = time.monotonic() + 120
    while True:
        result = subprocess.run(
            [*floe, "status", "--stack", STACK, "--context", "floe-local", "--format", "json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        rows = json.loads(result.stdout)["rows"] if result.stdout.strip().startswith("{") else []
        if result.returncode == 0 and rows and all(r["message"] == "" for r in rows):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: not every reference synced within 120s:\n{result.stdout}{result.stderr}")
        say(f"    waiting: {sum(r['message'] == '' for r in rows)}/{len(rows)} synced")
        time.sleep(5)
    print(
        run(
            "floe secrets status", [*floe, "status", "--stack", STACK, "--context", "floe-local"], env, cwd, show=False
        ),
        end="",
    )
    secret = json.loads(cluster.kubectl("get", "secret", "snowflake-credentials", "-n", "floe-jobs", "-o", "json"))
    say(
        "keys of Secret floe-jobs/snowflake-credentials (filled by the operator; values not shown): "
        + ", ".join(sorted(secret.get("data") or {}))
    )
    if kubernetes_auth:
        count, holders = client_secret_holders(cluster)
        if holders:
            raise SystemExit(f"demo: Secrets that hold a client secret: {', '.join(holders)}")
        say(
            f"client secrets stored in the cluster: none (all {count} Secrets checked for the server's client "
            "secrets and for clientId/clientSecret keys)"
        )
    say("done. `make demo-down` stops and removes all of it.")


def down() -> None:
    if not DEMO.exists():
        say("nothing to stop (.demo/ does not exist)")
        return
    cluster = LocalCluster(DEMO / "cluster")
    state = server_state()
    if (DEMO / "project").exists() and cluster.healthy() and server_running(state):
        bin_dir = tools_bin()
        env = pulumi_env(bin_dir, cluster.kubeconfig)
        say("destroying the demo stack (the keys it wrote into Infisical go with it)")
        run(
            "pulumi destroy",
            [str(bin_dir / "pulumi"), "--non-interactive", "destroy", "--yes", "--remove", "--stack", STACK],
            env,
            DEMO / "project",
            show=False,
        )
        if (DEMO / "kubernetes-identity").exists():
            InfisicalAdmin.from_state(state).delete_identity((DEMO / "kubernetes-identity").read_text())
        if (DEMO / "hand-set.json").exists():
            infisical = Infisical.from_credentials(env_file(state / "credentials.env"), prefix="")
            for path, key in json.loads((DEMO / "hand-set.json").read_text()).items():
                if infisical.get(ENV, path, key) is not None:
                    infisical.delete(ENV, path, key)
    say("stopping the operator and the local cluster")
    cluster.down()
    if (DEMO / "started-infisical").exists():
        say("stopping the Infisical server (`make demo` started it)")
        stop_server(state)
    shutil.rmtree(DEMO, ignore_errors=True)
    say("done")


def main(argv: list[str]) -> int:
    if argv in (["up"], ["up", "--kubernetes-auth"]):
        up(kubernetes_auth=len(argv) == 2)
    elif argv == ["down"]:
        down()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
