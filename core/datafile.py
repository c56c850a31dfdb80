"""Reading Qorgau's TOML data files: the packaged copy, or one the operator names."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import CatalogueError

__all__ = ["read_toml"]


def read_toml(name: str, path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """Parse ``path``, or the packaged ``core/data/<name>`` when it is None.

    Returns the document and the source to name in errors; an unreadable file
    or invalid TOML raises `CatalogueError` naming that source.
    """
    if path is None:
        source = f"core/data/{name}"
        text = resources.files("core").joinpath(f"data/{name}").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise CatalogueError(source, f"cannot read: {exc.strerror}") from None
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(source, f"not valid TOML: {exc}") from None
