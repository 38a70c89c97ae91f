"""Benchmarks: scripts that print figures and write JSON (`make bench`, `make bench-*`)."""

from __future__ import annotations

import json
from pathlib import Path


def report(results: dict, out: Path) -> None:
    """Print the results' Markdown `table` and write every figure to `out` (JSON)."""
    print(results["table"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
