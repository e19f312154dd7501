"""Shared fixtures.

Import-order hazard: with tensorflow 2.21 and torchvision 0.29, importing torchvision after
TensorFlow in one process segfaults; torch and torchvision first, then TensorFlow, works.  So
torch and torchvision (when installed) are imported here, before any test imports TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

try:  # keep this first: see the module docstring
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:  # the framework tests skip themselves when torch is missing
    pass

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SPEC_FILES = sorted(SPECS.glob("*.cnn"))
# The project's shared reference numbers; tests/data holds a copy for checkouts without ../shared.
REFS_PATH = ROOT.parent / "shared" / "refs" / "reference-numbers.json"
if not REFS_PATH.exists():
    REFS_PATH = ROOT / "tests" / "data" / "reference-numbers.json"


@pytest.fixture(scope="session")
def refs() -> dict:
    """Independent reference numbers (keras.applications, torchvision, the book ...)."""
    return json.loads(REFS_PATH.read_text())
