"""The human side of an alarm: lifecycle, routing, escalation, delivery channels.

Empty until the alerting issue: the package exists so that the layering
contracts in pyproject.toml are checked from the first commit.
"""
