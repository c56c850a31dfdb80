"""One root for every error Qorgau raises on purpose, each carrying its context."""

from __future__ import annotations

__all__ = ["CatalogueError", "ConfigError", "InvalidReading", "QorgauError"]


class QorgauError(Exception):
    """Root of all Qorgau errors."""


class ConfigError(QorgauError):
    """Settings or infrastructure configuration that cannot work."""


class CatalogueError(QorgauError):
    """A hazard catalogue or reference data file that fails validation.

    ``where`` names the file and entry so the ministry's editor can find it.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class InvalidReading(QorgauError):
    """A reading that cannot be accepted; ``reason`` is a short machine code.

    ``detail`` is for humans. Both travel with the message to the dead-letter topic.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
