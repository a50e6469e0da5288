"""The inputs: ``manifest.yaml`` and stack config, read and validated into frozen data.

Names, slugs and durations are checked here, once; YAML is read with the line of every key, so
each error names the file, the line, the field and the fix. Imports nothing else of floe_infra
but :mod:`floe_infra.errors`.
"""
