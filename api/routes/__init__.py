"""HTTP routes, one module per resource; `api.main` mounts them."""

from __future__ import annotations
