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


def shared_ref(name: str) -> Path:
    """A file of ../shared/refs, or its copy in tests/data for checkouts without ../shared."""
    path = ROOT.parent / "shared" / "refs" / name
    return path if path.exists() else ROOT / "tests" / "data" / name


REFS_PATH = shared_ref("reference-numbers.json")


@pytest.fixture(scope="session")
def refs() -> dict:
    """Independent reference numbers (keras.applications, torchvision, the book ...)."""
    return json.loads(REFS_PATH.read_text())


@pytest.fixture(scope="session")
def torchvision_refs() -> dict:
    """Every convolutional classifier of torchvision 0.29.1: params, float_buffers,
    conv_linear_macs at the stated input size ({model name: numbers})."""
    return json.loads(shared_ref("torchvision.json").read_text())["models"]


@pytest.fixture(scope="session")
def keras_applications_refs() -> dict:
    """Every model of keras.applications (Keras 3.15.1): input, total and trainable counts."""
    return json.loads(shared_ref("keras_applications.json").read_text())["models"]


def pytest_collection_modifyitems(config, items):
    """Tests marked zoo_full (the torchvision zoo's heavy checks, beyond CI's) run only when
    the marker expression names them: `pytest -m zoo_full` runs them alone, `pytest -m
    "torch or keras or zoo_full" tests/test_torchvision_zoo.py` the whole sweep."""
    if "zoo_full" in (config.option.markexpr or ""):
        return
    heavy = [item for item in items if item.get_closest_marker("zoo_full")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if not item.get_closest_marker("zoo_full")]
