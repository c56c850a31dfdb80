"""Online anomaly models (River) behind one small interface.

Empty until the online-models issue: the package exists so that the layering
contracts in pyproject.toml are checked from the first commit.
"""
