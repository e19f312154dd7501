"""Graphviz diagrams of a network.

:func:`to_dot` writes DOT text itself (deterministic, byte for byte, and without Graphviz);
:func:`to_graphviz` wraps it in a ``graphviz.Source`` (for notebooks); :func:`render` (and
:func:`render_dot`, for DOT text already written) runs the ``dot`` program, through the
``graphviz`` package, to give SVG, PNG or PDF bytes.

    diagram.py   what the diagram shows and the DOT text that draws it (its clusters are the
                 block calls of the code generators' call tree)
    escape.py    text from the network made safe for DOT (labels, quoted strings)
"""

from __future__ import annotations

import shutil

from ...errors import CnnDslError
from ...ir import Network
from .diagram import FAMILIES, RANKDIRS, Diagram

__all__ = ["FAMILIES", "FORMATS", "RANKDIRS", "render", "render_dot", "to_dot", "to_graphviz"]

FORMATS = ("svg", "png", "pdf")


def to_dot(
    net: Network,
    *,
    collapse: bool = False,
    rankdir: str = "TB",
    shapes: bool = True,
    params: bool = False,
    names: bool = True,
    legend: bool = True,
    dpi: int | None = None,
) -> str:
    """The network as DOT text (no Graphviz needed; the same bytes on every run).

    Options:
        collapse: draw each top-level block call as one node (labelled with its call)
        rankdir: ``TB`` (top to bottom) or ``LR`` (left to right); ``BT`` and ``RL`` too
        shapes: write each tensor's shape on the edge(s) leaving its layer
        params: write each layer's (and block's) parameter count, and the total in the title
        names: write each layer's name under its notation (inside a block call's cluster,
            without the call's prefix: ``conv_1`` for ``block1_conv_1``)
        legend: add a legend of the layer families present
        dpi: resolution for bitmap output (``render`` sets it for PNG)
    """
    if rankdir not in RANKDIRS:
        raise CnnDslError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    info = net.analysis if (shapes or params) else None
    diagram = Diagram(net, info, collapse=collapse, rankdir=rankdir, shapes=shapes, params=params)
    return diagram.dot(names=names, legend=legend, dpi=dpi)


INSTALL_DOT = (
    "Graphviz's `dot` program is needed to draw SVG, PNG or PDF, and it is not on PATH."
    " Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz`"
    " (macOS), `conda install -c conda-forge graphviz`, or see https://graphviz.org/download/."
    " DOT text (`--target dot`, cnndsl.backends.graphviz.to_dot) needs nothing."
)
INSTALL_PACKAGE = (
    "the `graphviz` Python package is needed to render diagrams: pip install graphviz"
    " (or pip install 'cnndsl[graphviz]'). DOT text (`--target dot`) needs nothing."
)


def _graphviz_module():
    try:
        import graphviz
    except ImportError:
        raise CnnDslError(INSTALL_PACKAGE) from None
    return graphviz


def to_graphviz(net: Network, **options):
    """The diagram as a ``graphviz.Source``: it displays itself in Jupyter, and ``.render()``
    writes ``<name>.gv`` and ``<name>.gv.svg``.  Takes the options of :func:`to_dot`."""
    graphviz = _graphviz_module()
    text = to_dot(net, **options)
    return graphviz.Source(text, filename=f"{net.name}.gv", format="svg", engine="dot")


def render(net: Network, fmt: str = "svg", **options) -> bytes:
    """The diagram drawn by Graphviz's ``dot``: ``svg``, ``png`` or ``pdf`` bytes.  Takes the
    options of :func:`to_dot`.  Raises :class:`CnnDslError` when Graphviz is missing."""
    if fmt == "png":
        options.setdefault("dpi", 144)
    return render_dot(to_dot(net, **options), fmt, net.name)


def render_dot(text: str, fmt: str = "svg", name: str = "network") -> bytes:
    """DOT text (from :func:`to_dot`) drawn by Graphviz's ``dot`` as ``svg``, ``png`` or ``pdf``
    bytes; ``name`` names the diagram in errors.  Raises :class:`CnnDslError` when Graphviz is
    missing or fails."""
    if fmt not in FORMATS:
        raise CnnDslError(f"cannot render {fmt!r}: the formats are {', '.join(FORMATS)}")
    graphviz = _graphviz_module()
    if shutil.which("dot") is None:
        raise CnnDslError(INSTALL_DOT)
    try:
        return graphviz.pipe("dot", fmt, text.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise CnnDslError(INSTALL_DOT) from None
    except graphviz.CalledProcessError as e:
        stderr = (e.stderr or b"").decode("utf-8", "replace").strip()
        message = f"Graphviz's dot failed on the diagram of {name!r}: {stderr}"
        raise CnnDslError(message) from None
