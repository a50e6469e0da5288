"""The Pulumi program: components that turn a plan into resources, and the dynamic providers that
write into Infisical. The only layer that imports Pulumi.
"""
