"""cnndsl: a declarative language and compiler for convolutional neural networks.

    >>> import cnndsl
    >>> net = cnndsl.loads('''
    ... input 32x32x3
    ... 3x3+1(S) conv 16 relu
    ... 2x2+2(V) maxpool
    ... flatten -> dense 10 softmax
    ... ''')
    >>> net.shape("conv_1")
    (32, 32, 16)
    >>> net.analysis.total_params
    41546

Public API: :func:`load`, :func:`loads`, :class:`Network` (the IR, see :mod:`cnndsl.ir`),
:class:`CnnDslError`.  Importing cnndsl imports neither TensorFlow nor PyTorch.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CnnDslError, Diagnostic, Location

if TYPE_CHECKING:
    from .ir import Network

__version__ = "0.1.0"
__all__ = ["CnnDslError", "Diagnostic", "Location", "Network", "load", "loads", "__version__"]


def loads(
    text: str,
    filename: str = "<string>",
    *,
    analyze: bool = True,
    import_path: Iterable[str | os.PathLike] = (),
    input: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
) -> Network:
    """Compile spec text into a :class:`Network`.

    Imports (``import "blocks.cnn"``) resolve relative to ``filename``'s directory (the current
    directory for ``<string>``), then in the directories of ``import_path``; they read only
    ``.cnn`` files under those directories (README, "Imports").  With ``analyze`` (the default)
    shapes are checked at once, so a spec that cannot compute raises here.  ``input`` analyses
    the spec at other input sizes: ``(512, 512, 3)`` for its only input, or sizes by input name
    (``{"image": (512, 512, 3), "meta": (10,)}``), each of the declared rank.  Raises
    :class:`CnnDslError`.
    """
    from .elaborate import elaborate
    from .parser import parse

    gc_was_enabled = gc.isenabled()
    gc.disable()  # compiling makes many small objects and no cycles; collections would only cost
    try:
        net = elaborate(parse(text, filename), import_path, input)
        if analyze:
            net.analysis  # noqa: B018  (computes and caches; raises located shape errors)
    except RecursionError:
        raise CnnDslError(
            "the spec nests blocks, branches and conditions too deeply to compile",
            Location(filename, 1, 1),
            hint="flatten the nesting, or use `repeat`",
        ) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    return net


def __getattr__(name: str):
    # The IR (and pydantic) load on first use, so that `cnndsl --help` starts fast.
    if name == "Network":
        from .ir import Network

        return Network
    raise AttributeError(f"module 'cnndsl' has no attribute {name!r}")


def load(
    path: str | os.PathLike,
    *,
    analyze: bool = True,
    import_path: Iterable[str | os.PathLike] = (),
    input: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
) -> Network:
    """Compile a .cnn file into a :class:`Network` (options as :func:`loads`).  Raises
    :class:`CnnDslError`."""
    from .elaborate import read_source

    path = Path(path)
    return loads(read_source(path), str(path), analyze=analyze, import_path=import_path, input=input)
