"""Qorgau's composition root: the `qorgau` command and the local stack launcher.

Only this package (and ``__main__`` modules) builds settings, pools and clients.
"""

from __future__ import annotations

__version__ = "0.1.0"
