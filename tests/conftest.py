"""Test-wide settings: offscreen Qt, a throw-away HOME/cache, and the ../shared locator."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_TMP_HOME = tempfile.mkdtemp(prefix="d2a-test-home-")
os.environ["HOME"] = _TMP_HOME
os.environ["XDG_CACHE_HOME"] = os.path.join(_TMP_HOME, ".cache")
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the clone; tests that need it skip with a reason when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this clone (it holds reference fixtures and real clips)")
    return SHARED
