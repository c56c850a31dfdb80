from __future__ import annotations

from qorgau.cli import main

raise SystemExit(main())
