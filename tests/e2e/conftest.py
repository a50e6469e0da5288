"""The e2e suite's fixtures and hooks: they live in the harness package (tools/harness), which the
tests, the demo and the benches import by name (``from harness import ...``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from harness.fixtures import (  # noqa: F401  (fixtures and hooks)
    chart_repo,
    cluster,
    infisical,
    infisical_admin,
    pytest_collection_modifyitems,
    pytest_runtest_makereport,
    restored_after_a_failure,
    tools_bin,
    turn_at_the_server,
)
