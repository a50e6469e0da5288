"""The unit suite's fixtures; they and the helpers the tests import live in support.py, which a
test imports by name (``from support import ...``): two files named conftest.py (this one and
the e2e suite's) cannot both be imported as ``conftest``, so no test imports a conftest."""

from support import _sigint_restored, infisical, project, run_program  # noqa: F401  (fixtures)
