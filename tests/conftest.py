"""Shared fixtures. Tests never read ../shared: they make their own data."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
