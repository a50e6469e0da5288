"""The e2e suite's fixtures and hooks; they live in harness.py, which the tests and the benches
import by name (``from harness import ...``; see tests/conftest.py for why not ``conftest``)."""

from harness import (  # noqa: F401  (fixtures and hooks)
    chart_repo,
    cluster,
    infisical,
    infisical_admin,
    pytest_collection_modifyitems,
    tools_bin,
)
