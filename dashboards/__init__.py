"""Grafana dashboards as code and their provisioning.

Empty until the dashboards issue: the package exists so that the layering
contracts in pyproject.toml are checked from the first commit.
"""
