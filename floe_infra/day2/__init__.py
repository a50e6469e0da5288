"""``floe secrets validate | list | status`` and the secrets plugins they use (infisical, k8s, and
any package's entry point in group ``floe.secrets``). Never imports :mod:`floe_infra.deploy`.
"""
