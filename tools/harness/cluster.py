"""A Kubernetes control plane on loopback, from the binaries tools/build.sh builds.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (one fake node whose pods
become Ready), all bound to 127.0.0.1, with a generated CA, serving certificate and client
certificates. `up` is a no-op while the cluster it recorded is healthy; `down` stops exactly the
processes `up` started (their pids and binaries are in STATE_DIR/pids.json: a pid whose command line
no longer names that binary, after a reboot or pid reuse, is someone else's and is left alone) and
removes STATE_DIR.

    python tools/harness/cluster.py up   STATE_DIR BIN_DIR   # prints the kubeconfig path (standard library only)
    python tools/harness/cluster.py down STATE_DIR
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
ISSUER = "https://kubernetes.default.svc"  # the service-account issuer, and so the tokens' default audience
NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
"""


class ClusterError(RuntimeError):
    """The control plane did not come up; the message names the component and its log."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certs(pki: Path) -> None:
    """CA, API server serving cert (127.0.0.1), admin client cert, service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=floe-local-ca",
        cwd=pki,
    )

    def issue(name: str, subject: str, ext: str) -> None:
        (pki / f"{name}.ext").write_text(ext)
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
            cwd=pki,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "30",
            "-extfile",
            f"{name}.ext",
            cwd=pki,
        )

    issue(
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
    )
    issue("admin", "/O=system:masters/CN=floe-admin", "extendedKeyUsage=clientAuth\n")
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def _kubeconfig(path: Path, server: str, pki: Path, user: tuple[str, dict[str, str]] | None = None) -> None:
    """A kubeconfig of context ``floe-local``: the admin's client certificate, or ``user`` (name,
    credentials)."""
    name, credentials = user or (
        "floe-admin",
        {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
    )
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "floe-local",
                "clusters": [
                    {"name": "floe-local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
                ],
                "users": [{"name": name, "user": credentials}],
                "contexts": [{"name": "floe-local", "context": {"cluster": "floe-local", "user": name}}],
            },
            indent=2,
        )
    )
    path.chmod(0o600)


def _decoded(data: dict[str, str] | None) -> dict[str, str]:
    """A Secret's ``data``, base64-decoded."""
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (data or {}).items()}


class LocalCluster:
    def __init__(self, state_dir: Path, bin_dir: Path | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.bin_dir = bin_dir
        self.kubeconfig = self.state_dir / "kubeconfig"
        self._pids_file = self.state_dir / "pids.json"
        self._pki = self.state_dir / "pki"

    # -- lifecycle ---------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> Path:
        if self.healthy():
            return self.kubeconfig
        if self._pids_file.exists():  # a dead or half-dead cluster from before
            self.down()
        assert self.bin_dir is not None, "bin_dir is needed to start a cluster"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        _certs(self._pki)
        pids: dict[str, int] = {}
        try:
            self._start_all(pids, timeout)
        except BaseException:
            self._stop(pids)
            raise
        return self.kubeconfig

    def down(self) -> None:
        self._stop(self._recorded_pids())
        if self.state_dir.exists():
            subprocess.run(["rm", "-rf", str(self.state_dir)], check=True)

    def healthy(self) -> bool:
        if not (self._pids_file.exists() and self.kubeconfig.exists()):
            return False
        recorded = json.loads(self._pids_file.read_text())
        if not all(isinstance(p, dict) and owned(p["pid"], p["binary"]) for p in recorded.values()):
            return False
        server = json.loads(self.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        return self._ready(server)

    # -- internals ---------------------------------------------------------------------------
    def _recorded_pids(self) -> dict[str, int]:
        """The recorded processes that are still the binaries `up` started; says which it skips."""
        if not self._pids_file.exists():
            return {}
        ours = {}
        for name, entry in json.loads(self._pids_file.read_text()).items():
            # (a file from before binaries were recorded holds bare pids: match the binary's name)
            pid, binary = (entry["pid"], entry["binary"]) if isinstance(entry, dict) else (entry, name)
            if owned(pid, binary):
                ours[name] = pid
            elif _alive(pid):
                print(
                    f"cluster: not stopping pid {pid} (recorded as {name}): it no longer runs {binary}", file=sys.stderr
                )
        return ours

    def _start_all(self, pids: dict[str, int], timeout: float) -> None:
        etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
        etcd_url = f"http://{HOST}:{etcd_port}"
        peer_url = f"http://{HOST}:{peer_port}"
        pids["etcd"] = self._spawn(
            "etcd",
            [
                "--name",
                "floe",
                "--data-dir",
                str(self.state_dir / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"floe={peer_url}",
                "--log-level",
                "warn",
            ],
        )
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), timeout)

        server = f"https://{HOST}:{api_port}"
        pki = self._pki
        pids["kube-apiserver"] = self._spawn(
            "kube-apiserver",
            [
                "--bind-address",
                HOST,
                "--advertise-address",
                HOST,
                "--secure-port",
                str(api_port),
                "--etcd-servers",
                etcd_url,
                "--tls-cert-file",
                str(pki / "apiserver.crt"),
                "--tls-private-key-file",
                str(pki / "apiserver.key"),
                "--client-ca-file",
                str(pki / "ca.crt"),
                "--service-account-key-file",
                str(pki / "sa.pub"),
                "--service-account-signing-key-file",
                str(pki / "sa.key"),
                "--service-account-issuer",
                ISSUER,
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--authorization-mode",
                "Node,RBAC",
                "--endpoint-reconciler-type",
                "none",
            ],
        )
        self._wait("kube-apiserver", lambda: self._ready(server), timeout)
        _kubeconfig(self.kubeconfig, server, pki)

        kubeconfig = str(self.kubeconfig)
        pids["kube-controller-manager"] = self._spawn(
            "kube-controller-manager",
            [
                "--kubeconfig",
                kubeconfig,
                "--bind-address",
                HOST,
                "--secure-port",
                "0",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--service-account-private-key-file",
                str(pki / "sa.key"),
                "--root-ca-file",
                str(pki / "ca.crt"),
                "--controllers",
                "*,-node-ipam-controller",
                # kwok renews the fake node's lease less often than the default 50 s grace: the node
                # would flap NotReady and the node lifecycle controller mark new pods not Ready for good.
                "--node-monitor-grace-period",
                "10m",
            ],
        )
        pids["kube-scheduler"] = self._spawn(
            "kube-scheduler",
            [
                "--kubeconfig",
                kubeconfig,
                "--bind-address",
                HOST,
                "--secure-port",
                "0",
                "--leader-elect=false",
            ],
        )
        stages = sorted(str(p) for p in (self._bin("kwok-stages")).glob("*.yaml"))
        pids["kwok"] = self._spawn(
            "kwok",
            [
                *[arg for s in stages for arg in ("-c", s)],
                "--kubeconfig",
                kubeconfig,
                "--manage-nodes-with-annotation-selector",
                "kwok.x-k8s.io/node=fake",
                "--node-ip",
                HOST,
                "--cidr",
                "10.244.0.1/16",
            ],
        )
        self._record(pids)
        self.kubectl("apply", "-f", "-", input=NODE)
        self._wait("kwok", self._node_ready, timeout)

    def _record(self, pids: dict[str, int]) -> None:
        self._pids_file.write_text(json.dumps({n: {"pid": p, "binary": str(self._bin(n))} for n, p in pids.items()}))

    # -- the Infisical operator, out of cluster ---------------------------------------------
    def chart_kubeconfig(self, chart: str, hours: int = 24) -> Path:
        """A kubeconfig of the ServiceAccount the Deployment of ``chart`` runs as (a token by
        TokenRequest): a controller out of cluster then has the chart's RBAC and nothing more, as
        it would in a cluster. The chart's release must be installed (a stack's `pulumi up`)."""
        found = json.loads(
            self.kubectl("get", "deployments", "-A", "-l", f"app.kubernetes.io/name={chart}", "-o", "json")
        )["items"]
        if len(found) != 1:
            raise ClusterError(
                f"expected one Deployment of the {chart} chart, found {len(found)}: "
                "`pulumi up` a stack that installs the chart before starting its controller"
            )
        namespace = found[0]["metadata"]["namespace"]
        account = found[0]["spec"]["template"]["spec"]["serviceAccountName"]
        token = self.kubectl("create", "token", account, "-n", namespace, "--duration", f"{hours}h").strip()
        server, _ = self.api_server()
        path = self.state_dir / f"{chart}.kubeconfig"
        _kubeconfig(path, server, self._pki, (f"system:serviceaccount:{namespace}:{account}", {"token": token}))
        return path

    def operator_kubeconfig(self) -> Path:
        return self.chart_kubeconfig("secrets-operator")

    def start_operator(self, timeout: float = 60.0) -> Path:
        """Runs the operator against this cluster as the chart's ServiceAccount (the CRDs it
        watches created first where absent: it exits when one of its kinds has none);
        ``down``/``stop_operator`` stop it. Its log path."""
        if self.operator_running():
            return self.state_dir / "logs" / "infisical-operator.log"
        present = set(self.kubectl("get", "crd", "-o", "name").split())
        for crd in sorted(self._bin("infisical-operator-crds").glob("*.yaml")):
            group, plural = crd.stem.split("_", 1)  # kubebuilder's file name: <group>_<plural>.yaml
            if f"customresourcedefinition.apiextensions.k8s.io/{plural}.{group}" not in present:
                self.kubectl("create", "-f", str(crd))
        kubeconfig = self.operator_kubeconfig()
        probe = _free_port()
        pid = self._spawn(
            "infisical-operator",
            [
                "--kubeconfig",
                str(kubeconfig),
                "--metrics-bind-address",
                "0",
                "--health-probe-bind-address",
                f"{HOST}:{probe}",
                "--leader-elect=false",
                "--zap-devel=false",
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        )  # its Kubernetes Auth reads only the variable
        self._record({**self._recorded_pids(), "infisical-operator": pid})
        self._wait("infisical-operator", lambda: _http_ok(f"http://{HOST}:{probe}/readyz"), timeout)
        return self.state_dir / "logs" / "infisical-operator.log"

    def can_operator(self, *args: str, chart: str = "secrets-operator") -> bool:
        """``kubectl auth can-i ARGS`` as the controller of ``chart`` runs (chart_kubeconfig)."""
        result = subprocess.run(
            [
                str(self._bin("kubectl")),
                "--kubeconfig",
                str(self.state_dir / f"{chart}.kubeconfig"),
                "auth",
                "can-i",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip() == "yes"

    def operator_running(self) -> bool:
        return "infisical-operator" in self._recorded_pids()

    def stop_operator(self) -> None:
        pids = self._recorded_pids()
        self._stop({k: v for k, v in pids.items() if k == "infisical-operator"})
        self._record({k: v for k, v in pids.items() if k != "infisical-operator"})

    # -- External Secrets Operator's controller, out of cluster ------------------------------
    def start_eso(self, timeout: float = 60.0) -> Path:
        """Runs ESO's controller (tools/build.sh: only its Infisical provider) against this cluster
        as its chart's ServiceAccount; its CRDs come from the stack (the chart's, outside the
        release). No webhook or cert controller: kwok runs no pods to serve them, and the
        controller needs neither. ``down``/``stop_eso`` stop it. Its log path."""
        log = self.state_dir / "logs" / "external-secrets.log"
        if "external-secrets" in self._recorded_pids():
            return log
        kubeconfig = self.chart_kubeconfig("external-secrets")
        pid = self._spawn(
            "external-secrets",
            [
                "--metrics-addr=0",
                "--concurrent=2",
                "--loglevel=info",
                # The chart's 5 minutes between checks of a store, shortened so that a store whose
                # login fails says so within a test step (floe secrets status shows its reason).
                "--store-requeue-interval=15s",
                # The chart's defaults run these too; the stack makes none of their kinds.
                "--enable-push-secret-reconciler=false",
                "--enable-cluster-push-secret-reconciler=false",
                "--enable-cluster-external-secret-reconciler=false",
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        )  # it takes no --kubeconfig flag
        self._record({**self._recorded_pids(), "external-secrets": pid})
        deadline = time.monotonic() + timeout
        while b"Starting workers" not in log.read_bytes():
            if "external-secrets" not in self._recorded_pids():
                raise ClusterError(f"external-secrets exited: see {log}")
            if time.monotonic() > deadline:
                raise ClusterError(f"external-secrets did not start its workers in {timeout:.0f}s: see {log}")
            time.sleep(0.5)
        return log

    def stop_eso(self) -> None:
        pids = self._recorded_pids()
        self._stop({k: v for k, v in pids.items() if k == "external-secrets"})
        self._record({k: v for k, v in pids.items() if k != "external-secrets"})

    # -- what Infisical's Kubernetes Auth needs of a cluster ---------------------------------
    def api_server(self) -> tuple[str, str]:
        """The API server's URL and CA certificate (PEM)."""
        entry = json.loads(self.kubeconfig.read_text())["clusters"][0]["cluster"]
        return str(entry["server"]), Path(entry["certificate-authority"]).read_text()

    def token_reviewer_jwt(self, name: str = "floe-token-reviewer", hours: int = 24) -> str:
        """A JWT of ServiceAccount kube-system/``name``, bound to system:auth-delegator (it may call
        TokenReview): what an Infisical identity's Kubernetes Auth verifies logins with."""
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        {
                            "apiVersion": "v1",
                            "kind": "ServiceAccount",
                            "metadata": {"name": name, "namespace": "kube-system"},
                        },
                        {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "ClusterRoleBinding",
                            "metadata": {"name": name},
                            "roleRef": {
                                "apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole",
                                "name": "system:auth-delegator",
                            },
                            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
                        },
                    ],
                }
            ),
        )
        return self.kubectl("create", "token", name, "-n", "kube-system", "--duration", f"{hours}h").strip()

    def remove_token_reviewer(self, name: str = "floe-token-reviewer") -> None:
        self.kubectl("delete", "clusterrolebinding", name, "--ignore-not-found")
        self.kubectl("delete", "serviceaccount", name, "-n", "kube-system", "--ignore-not-found")

    def secrets(self) -> list[tuple[str, str, dict[str, str]]]:
        """(namespace, name, decoded data) of every Secret in the cluster."""
        found = json.loads(self.kubectl("get", "secrets", "-A", "-o", "json"))["items"]
        return [(s["metadata"]["namespace"], s["metadata"]["name"], _decoded(s.get("data"))) for s in found]

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """One Secret's decoded data; None when there is no such Secret."""
        found = self.kubectl("get", "secret", name, "-n", namespace, "-o", "json", "--ignore-not-found")
        if not found.strip():
            return None
        return _decoded(json.loads(found).get("data"))

    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(self._bin("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _node_ready(self) -> bool:
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
            node = json.loads(self.kubectl("get", "node", "kwok-node-0", "-o", "json"))
            return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        return False

    def _bin(self, name: str) -> Path:
        assert self.bin_dir is not None
        return self.bin_dir / name

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> int:
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [str(self._bin(name)), *args],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        log.close()
        self._procs = getattr(self, "_procs", {})
        self._procs[name] = proc
        return proc.pid

    def _wait(self, name: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = getattr(self, "_procs", {}).get(name)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ClusterError(f"{name} exited with {proc.returncode}; see {self.state_dir}/logs/{name}.log")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.25)
        raise ClusterError(f"{name} not ready after {timeout:.0f}s; see {self.state_dir}/logs/{name}.log")

    def _ready(self, server: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self._pki / "ca.crt"))
        ctx.load_cert_chain(str(self._pki / "admin.crt"), str(self._pki / "admin.key"))
        return _http_ok(f"{server}/readyz", ctx)

    @staticmethod
    def _stop(pids: dict[str, int]) -> None:
        for pid in reversed(list(pids.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for pid in pids.values():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def owned(pid: int, binary: str) -> bool:
    """Whether ``pid`` is alive and still runs ``binary`` (its /proc cmdline's first word)."""
    if not _alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0 == binary if "/" in binary else Path(argv0).name == binary


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass  # not our child (a cluster started by another process): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "up":
        cluster = LocalCluster(Path(argv[1]), Path(argv[2]))
        try:
            print(cluster.up())
        except ClusterError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        return 0
    if len(argv) == 2 and argv[0] == "down":
        LocalCluster(Path(argv[1])).down()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
