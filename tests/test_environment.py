"""The installed environment as the Makefile makes it: no package swaps another's modules."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import urllib3


def test_urllib3_is_urllib3() -> None:
    """niquests (for grafana-client) needs urllib3-future, whose wheel copies itself over
    urllib3 at every interpreter start; requests, pywebpush, apprise and Schemathesis then
    run on the fork ('TrafficPolice' object has no attribute 'keys'). The Makefile builds it
    with URLLIB3_NO_OVERRIDE: the fork stays in its own package."""
    assert urllib3.__version__ == importlib.metadata.version("urllib3")
    site = Path(urllib3.__file__).parents[1]
    assert not (site / "urllib3_future.pth").exists(), f"urllib3-future's hook in {site}"
    import urllib3_future

    assert urllib3_future.__file__ != urllib3.__file__
    assert "urllib3_future" not in sys.modules["urllib3"].__name__
