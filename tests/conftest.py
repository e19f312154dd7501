"""Shared fixtures, and the suite's memory discipline.

Import-order hazard: with tensorflow 2.21 and torchvision 0.29, importing torchvision after
TensorFlow in one process segfaults; torch and torchvision first, then TensorFlow, works.  So
torch and torchvision (when installed) are imported here, before any test imports TensorFlow.

Memory: the suite must fit a small machine (its process's peak under 3 GB; README, Memory),
and the framework tests build models of up to 138 million parameters (VGG-16: 553 MB in each
framework) on top of about 1.2 GB that importing torch and TensorFlow takes.  So a test module
keeps at most one spec's models at a time and drops them with :func:`free_memory`, pages are
given back after every test and the session freed after every module (below), and
TensorFlow allocates from the system allocator (TF_ONEDNN_USE_SYSTEM_ALLOCATOR, below): its
default oneDNN allocator keeps every block it ever had (a VGG-16 built and dropped held on to
1.4 GB), the system one gives them back.  At the end of the session the peak is reported
(:func:`pytest_terminal_summary`), and CNNDSL_TEST_MAX_MB turns a peak above it into a failure.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import sys
import threading
from pathlib import Path

import pytest

# Read by TensorFlow when it is imported (by the test modules, after this one), and inherited
# by the processes the tests start.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")

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
    """Tests marked zoo_full (the zoos' heavy checks, beyond CI's) run only when the marker
    expression names them: `pytest -m zoo_full` runs them alone, `pytest -m "torch or
    keras or zoo_full" tests/test_torchvision_zoo.py` (or "keras or zoo_full"
    tests/test_keras_zoo.py) the whole sweep."""
    if "zoo_full" in (config.option.markexpr or ""):
        return
    heavy = [item for item in items if item.get_closest_marker("zoo_full")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if not item.get_closest_marker("zoo_full")]


# ------------------------------------------------------------------ memory

try:
    _libc = ctypes.CDLL(None)
    _malloc_trim = _libc.malloc_trim  # glibc
    # Blocks of 4 MB and more (tensors, arrays) are mapped alone and unmapped when freed,
    # whatever glibc's adaptive threshold has become: freed models leave no holes in the heap.
    _libc.mallopt(-3, 4 * 2**20)  # M_MMAP_THRESHOLD
except (AttributeError, OSError):
    _malloc_trim = None


def free_memory() -> None:
    """Give the memory of dropped models back to the system: Keras's global state (layer
    names, graphs) is reset, then :func:`trim_memory`."""
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session()
    trim_memory()


def trim_memory() -> None:
    """Collect reference cycles and have glibc return its free pages (live models keep
    working: for use between the steps of one test)."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


def pytest_collection_finish(session):
    """Once the tests are collected, the objects that exist (the frameworks' modules: about
    600,000) are moved out of the garbage collector's sight with gc.freeze: they live as long
    as the session, and a collection that frees a model no longer walks them (it took 0.3 s,
    now well under 1 ms; the suite collects after every spec)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _pages_given_back():
    """After every test, glibc returns the pages that the test's frees left in its heap (1-2
    ms).  Without it the process's floor crept up by what the tests before had freed but glibc
    kept -- 650 MB after the RegNet shape checks -- and every large model was built on top."""
    yield
    if _malloc_trim is not None:
        _malloc_trim(0)


@pytest.fixture(scope="module", autouse=True)
def _module_freed():
    """After each test module, :func:`free_memory`: Keras's global state and the reference
    cycles the module's models left."""
    yield
    free_memory()


@pytest.fixture
def freed():
    """For a test that builds models: :func:`free_memory` as it ends, so that the next test's
    are built on what was there before."""
    yield
    free_memory()


class LastBuilt:
    """A cache of one: ``cache(name)`` builds with ``make(name)`` and keeps only the last one
    built, dropping (and :func:`free_memory`) the one before.  The framework test modules build
    a spec's models once for all its tests (pytest runs them together: their ``spec`` fixture is
    module-scoped) and hold one spec's at a time (VGG-16's model takes 553 MB)."""

    def __init__(self, make) -> None:
        self._make = make
        self._built: dict = {}

    def __call__(self, name: str):
        if name not in self._built:
            self.drop()
            self._built[name] = self._make(name)
        return self._built[name]

    def drop(self) -> None:
        self._built.clear()
        free_memory()


class _TreePeak(threading.Thread):
    """The largest total resident memory of this process and its children (the processes the
    tests start: generated modules run alone, the CLI), sampled every half second from
    /proc (Linux; elsewhere nothing is measured).  A sum of resident sets: pages that
    processes share (the frameworks' libraries) count once per process."""

    def __init__(self) -> None:
        super().__init__(name="peak-memory", daemon=True)
        self.peak = 0
        self.stop = threading.Event()

    @staticmethod
    def _tree(pid: int) -> list[int]:
        pids, todo = [], [pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as children:
                        todo.extend(int(child) for child in children.read().split())
            except OSError:  # the process has ended
                pass
        return pids

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def sample(self) -> None:
        self.peak = max(self.peak, sum(map(self._rss, self._tree(os.getpid()))))

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.sample()


_tree_peak = _TreePeak()


def pytest_sessionstart(session):
    if os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        _tree_peak.start()


def _peaks() -> tuple[int, int]:
    """Peak resident bytes: of this process, and of it and its children at once (sampled).
    (Not the children's ru_maxrss: a child starts with its parent's peak as its own.)"""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, _tree_peak.peak


def _limit() -> int | None:
    """CNNDSL_TEST_MAX_MB, in bytes: the most the session may take (None: no limit)."""
    limit = os.environ.get("CNNDSL_TEST_MAX_MB")
    return int(limit) * 2**20 if limit else None


def pytest_sessionfinish(session, exitstatus):
    """With CNNDSL_TEST_MAX_MB=N, the session fails if its peak memory (either of
    :func:`_peaks`) went over N MB."""
    if _tree_peak.is_alive():
        _tree_peak.stop.set()
        _tree_peak.sample()
    limit = _limit()
    if limit and max(_peaks()) > limit and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _memory_summary(terminalreporter) -> None:
    own, tree = _peaks()
    line = f"peak memory: {own / 2**20:.0f} MB in this process"
    if tree:
        line += f", {tree / 2**20:.0f} MB with its children (sampled every 0.5 s)"
    limit = _limit()
    if limit and max(own, tree) > limit:
        terminalreporter.write_line(f"{line}: over CNNDSL_TEST_MAX_MB={limit // 2**20}", red=True)
    else:
        terminalreporter.write_line(line)


def _differences_summary(terminalreporter) -> None:
    """The figures of the tests that compare outputs with a reference model and record them
    (``record_property("max_abs_diff", {framework: (difference, scale)})``): one line per test
    and the worst relative difference -- what README's zoo sections quote after a sweep."""
    rows = []
    for report in terminalreporter.stats.get("passed", []):
        figures = dict(report.user_properties).get("max_abs_diff")
        if figures:
            rows.append((report.nodeid.rsplit("::", 1)[-1], figures))
    if not rows:
        return
    terminalreporter.section("max abs differences (relative to the reference's largest output)")
    worst: dict[str, tuple[float, str]] = {}
    for name, figures in rows:
        cells = []
        for framework, (diff, scale) in figures.items():
            relative = diff / scale if scale else diff
            cells.append(f"{framework} {diff:.3g} of {scale:.3g} ({relative:.2g})")
            if relative >= worst.get(framework, (-1.0, ""))[0]:
                worst[framework] = (relative, name)
        terminalreporter.line(f"{name}: {'; '.join(cells)}")
    for framework, (relative, name) in worst.items():
        terminalreporter.line(
            f"worst {framework}: {relative:.2g} relative, {name} ({len(rows)} tests)"
        )


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    _differences_summary(terminalreporter)
    _memory_summary(terminalreporter)
