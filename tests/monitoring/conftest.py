"""Shared by the monitoring tests: the render helper of tests/unit and the real broker of
tests/pyclient are importable from here."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "unit"))
sys.path.insert(0, str(HERE.parent / "pyclient"))
sys.path.insert(0, str(HERE))
