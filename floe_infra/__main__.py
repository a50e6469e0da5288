"""``python -m floe_infra``: the ``floe`` command."""

from .cli import entry

entry()
