"""The e2e harness, one package for `make e2e`, `make demo`, `make cluster` and the benches:

- :mod:`.cluster`: a Kubernetes control plane on loopback, and the controllers run out of cluster
  with their charts' rights;
- :mod:`.localenv`: the real Infisical server (../shared), the built tools, a chart repository;
- :mod:`.stack`: the real Pulumi CLI on a copy of the program;
- :mod:`.probes`: waiting on what the real systems do;
- :mod:`.fault_proxy`: an HTTP proxy in front of Infisical that loses, holds or refuses answers;
- :mod:`.fixtures`: the pytest fixtures and hooks (tests/e2e/conftest.py), and a module's helpers.

What a test module uses is importable from here.
"""

from .fixtures import ensure_namespaces, keep_log, stop_operator, unavailable
from .localenv import ROOT
from .probes import eventually, polling, rolled_out_in
from .stack import Pulumi, killed_up, make_project, pulumi_env

__all__ = [
    "ROOT",
    "Pulumi",
    "ensure_namespaces",
    "eventually",
    "keep_log",
    "killed_up",
    "make_project",
    "polling",
    "pulumi_env",
    "rolled_out_in",
    "stop_operator",
    "unavailable",
]
