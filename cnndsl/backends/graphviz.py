"""Graphviz diagrams of a network.

:func:`to_dot` writes DOT text itself (deterministic, byte for byte, and without Graphviz);
:func:`to_graphviz` wraps it in a ``graphviz.Source`` (for notebooks); :func:`render` runs the
``dot`` program, through the ``graphviz`` package, to give SVG, PNG or PDF bytes.

What the diagram shows:

- one rounded box per layer, labelled in the spec's own notation (``3x3+1(S) conv 64 relu``),
  with the layer name in small type (``names``) and its parameters (``params``), filled with
  the colour of its family (convolution, pooling, normalization ...);
- add / concat / multiply as small circles (⊕, ‖, ⊗) where their inputs join;
- each tensor's shape (``112x112x64``) on the edge leaving its layer (``shapes``); a tensor read
  by several layers leaves through one small junction dot, so its shape is written once;
- every block call as a labelled cluster (``inception(64, 96, 128, 16, 32, 32)``, or
  ``block1: stage(64, 2)`` when the call was named), nested calls as nested clusters; with
  ``collapse`` each top-level block call is one node instead;
- the network's outputs as dark ``output`` terminals, and a legend of the families present.

Every piece of text from the network goes through :func:`_html` (HTML-like labels) or
:func:`_quoted` (quoted strings); node IDs are generated (``n0``, ``n1`` ...), never names.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass, field

from ..errors import CnnDslError
from ..ir import Network
from ..ir.base import CallSite, Layer, fmt_shape

__all__ = ["FAMILIES", "FORMATS", "render", "to_dot", "to_graphviz"]

FORMATS = ("svg", "png", "pdf")
RANKDIRS = ("TB", "LR", "BT", "RL")

FONT = "Helvetica,Arial,sans-serif"
INK = "#263238"  # text
MUTED = "#607d8b"  # small text: names, parameters, shapes
EDGE = "#78909c"
EDGE_COLOR = f'"{EDGE}"'

# family -> (legend text, fill, border); a soft palette that stays readable in greyscale.
FAMILIES: dict[str, tuple[str, str, str]] = {
    "input": ("input", "#cfd8dc", "#455a64"),
    "conv": ("convolution", "#d6e6f5", "#4a7fb5"),
    "pool": ("pooling", "#fde3c8", "#d08a3c"),
    "norm": ("normalization", "#e6dcf3", "#8a6bbf"),
    "activation": ("activation", "#fbdada", "#c0605f"),
    "dense": ("dense", "#d7edd5", "#4f9a55"),
    "merge": ("merge", "#fff3b8", "#b59b2a"),
    "reshape": ("reshape", "#d3eeee", "#3f9a9a"),
    "regularization": ("regularization", "#ececec", "#8c8c8c"),
    "other": ("other", "#ffffff", "#8c8c8c"),
    "block": ("block call", "#f7f8fa", "#37474f"),
}
MERGE_SYMBOLS = {"add": "\u2295", "concat": "\u2016", "multiply": "\u2297"}  # ⊕ ‖ ⊗
MERGE_KINDS = tuple(MERGE_SYMBOLS)
OUTPUT_FILL = "#37474f"
# Cluster backgrounds by nesting depth (outermost first), and their borders.
CLUSTER_FILLS = ("#f5f7f9", "#ebeff3", "#e1e7ec")
CLUSTER_BORDER = "#90a4ae"


# ------------------------------------------------------------------------------ escaping

_CONTROL = re.compile(r"\s+")


def _clean(text: object) -> str:
    """One line of printable text: whitespace runs (newlines too) become one space, other
    control characters and lone surrogates become U+FFFD."""
    text = _CONTROL.sub(" ", str(text))
    text = "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return text.strip()


def _html(text: object) -> str:
    """Text for an HTML-like label (the markup there is ours, never the network's)."""
    return (
        _clean(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _quoted(*lines: object) -> str:
    """A DOT quoted string (a tooltip) of one or more lines: backslashes and quotes escaped,
    lines joined by the escString ``\\n``."""
    parts = [_clean(line).replace("\\", "\\\\").replace('"', '\\"') for line in lines]
    return '"' + "\\n".join(parts) + '"'


def _small(text: str, size: int = 8, color: str = MUTED) -> str:
    return f'<FONT POINT-SIZE="{size}" COLOR="{color}">{text}</FONT>'


def _attrs(**attrs: str | int | float) -> str:
    """``[a=1, b="x"]`` from values that are already DOT (quoted strings, <HTML>, numbers)."""
    return "[" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "]"


def _html_label(*lines: str) -> str:
    return "<" + "<BR/>".join(line for line in lines if line) + ">"


# ------------------------------------------------------------------------------ the block tree


@dataclass
class _Cluster:
    """One block call instance: its call site and what it holds (layers and inner calls), in
    order of first appearance."""

    call: CallSite | None
    parent_instance: str = ""
    items: list[Layer | _Cluster] = field(default_factory=list)
    index: dict[str, _Cluster] = field(default_factory=dict)

    def child(self, call: CallSite) -> _Cluster:
        if call.instance not in self.index:
            inner = _Cluster(call, self.call.instance if self.call else "")
            self.index[call.instance] = inner
            self.items.append(inner)
        return self.index[call.instance]

    def layers(self):
        for item in self.items:
            if isinstance(item, _Cluster):
                yield from item.layers()
            else:
                yield item


def _block_tree(net: Network) -> _Cluster:
    root = _Cluster(None)
    for layer in net.layers:
        cluster = root
        for call in layer.calls:
            cluster = cluster.child(call)
        cluster.items.append(layer)
    return root


def call_title(call: CallSite, parent_instance: str = "") -> str:
    """A block call as an HTML label: ``inception(64, ...)``, or ``<B>block1</B>: stage(64, 2)``
    when the call was given a name (an unnamed call's instance is ``<block>_<n>``)."""
    local = call.instance
    if parent_instance and local.startswith(parent_instance + "_"):
        local = local[len(parent_instance) + 1 :]
    signature = _html(call.signature())
    if re.fullmatch(re.escape(call.block) + r"_\d+", local):
        return signature
    return f"<B>{_html(local)}</B>: {signature}"


# ------------------------------------------------------------------------------ DOT


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


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
        names: write each layer's name under its notation
        legend: add a legend of the layer families present
        dpi: resolution for bitmap output (``render`` sets it for PNG)
    """
    if rankdir not in RANKDIRS:
        raise CnnDslError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    info = net.analysis if (shapes or params) else None
    return _Diagram(net, info, collapse, rankdir, shapes, params, names, legend, dpi).dot()


class _Diagram:
    def __init__(self, net, info, collapse, rankdir, shapes, params, names, legend, dpi):
        self.net, self.info = net, info
        self.collapse, self.rankdir, self.shapes = collapse, rankdir, shapes
        self.params, self.names, self.legend, self.dpi = params, names, legend, dpi
        self.tree = _block_tree(net)
        self.ids: dict[str, str] = {}  # layer name -> the ID of the node that draws it
        self.families: list[str] = []  # families drawn, in order of first appearance
        self.merges: list[str] = []
        self.clusters = 0
        self.w = _Writer()

    # ---- the whole graph
    def dot(self) -> str:
        w = self.w
        w.depth = 1
        for i, item in enumerate(self.tree.items):
            if isinstance(item, _Cluster) and self.collapse:
                self.block_node(item, f"b{i}")
            elif isinstance(item, _Cluster):
                self.cluster(item, 0)
            else:
                self.layer_node(item)
        self.edges()
        body, w.lines, w.depth = w.lines, [], 0
        w("// Generated by cnndsl (cnndsl.backends.graphviz); render with: dot -Tsvg")
        w(f"digraph {_quoted(self.net.name)} {{")
        w.depth = 1
        self.header()
        w.lines.extend(body)
        w.depth = 0
        w("}")
        return w.text()

    def title(self) -> str:
        """The graph's label: the network's name, its parameters (``params``) and the legend."""
        rows = [f'<TR><TD><FONT POINT-SIZE="14"><B>{_html(self.net.name)}</B></FONT></TD></TR>']
        if self.params:
            total = f"{self.info.total_params:,} parameters"
            rows.append(f"<TR><TD>{_small(total, 10)}</TD></TR>")
        if self.legend:
            rows.append(f"<TR><TD>{self.legend_table()}</TD></TR>")
        return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">' + "".join(rows) + "</TABLE>>"

    def legend_table(self) -> str:
        """A row (or rows, top to bottom) of colour swatches for the families drawn."""
        cells = []
        for family in (f for f in FAMILIES if f in self.families):
            text, fill, border = FAMILIES[family]
            if family == "merge" and self.merges:
                text = " ".join(f"{MERGE_SYMBOLS[k]} {k}" for k in MERGE_KINDS if k in self.merges)
            cells.append(
                f'<TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1" WIDTH="14" HEIGHT="10"'
                f' FIXEDSIZE="TRUE"></TD><TD ALIGN="LEFT">{_small(_html(text), 9, INK)}</TD>'
            )
        per_row = 5 if self.rankdir in ("TB", "BT") else 10
        rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
        return (
            '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="3" CELLPADDING="1">'
            + "".join("<TR>" + "<TD> </TD>".join(row) + "</TR>" for row in rows)
            + "</TABLE>"
        )

    def header(self) -> None:
        w = self.w
        graph = dict(
            rankdir=self.rankdir,
            label=self.title(),
            labelloc="t",
            fontname=f'"{FONT}"',
            fontsize=12,
            fontcolor=f'"{INK}"',
            bgcolor='"white"',
            nodesep=0.25,
            ranksep=0.3,
            newrank="true",
            pad=0.2,
        )
        if self.dpi:
            graph["dpi"] = self.dpi
        w(f"graph {_attrs(**graph)}")
        w(
            "node "
            + _attrs(
                shape="box",
                style='"rounded,filled"',
                fontname=f'"{FONT}"',
                fontsize=11,
                fontcolor=f'"{INK}"',
                height=0.3,
                margin='"0.12,0.04"',
                penwidth=1,
            )
        )
        w(
            "edge "
            + _attrs(
                fontname=f'"{FONT}"',
                fontsize=9,
                fontcolor=f'"{MUTED}"',
                color=f'"{EDGE}"',
                arrowsize=0.6,
                penwidth=1,
            )
        )

    # ---- nodes
    def use_family(self, family: str) -> tuple[str, str]:
        if family not in FAMILIES:
            family = "other"
        if family not in self.families:
            self.families.append(family)
        _, fill, border = FAMILIES[family]
        return fill, border

    def layer_node(self, layer: Layer) -> None:
        node_id = f"n{len(self.ids)}"
        self.ids[layer.name] = node_id
        fill, border = self.use_family(layer.family)
        shape = self.info[layer.name].output_shape if self.info else None
        count = self.info[layer.name].params if self.info else 0
        tooltip = [layer.name, layer.notation()]
        if shape is not None:
            tooltip.append(fmt_shape(shape))
        if count:
            tooltip.append(f"{count:,} parameters")
        attrs: dict = {}
        if layer.family == "merge" and layer.kind in MERGE_SYMBOLS:
            if layer.kind not in self.merges:
                self.merges.append(layer.kind)
            attrs = dict(
                label=_html_label(MERGE_SYMBOLS[layer.kind]),
                shape="circle",
                fixedsize="true",
                width=0.3,
                fontsize=14,
            )
        else:
            lines = [_html(layer.notation())]
            if self.names and layer.kind != "input":
                lines.append(_small(_html(layer.name)))
            if self.params and count:
                lines.append(_small(f"{count:,} params"))
            attrs = dict(label=_html_label(*lines))
            if layer.kind == "input":
                attrs["penwidth"] = 1.5
        attrs.update(fillcolor=f'"{fill}"', color=f'"{border}"', tooltip=_quoted(*tooltip))
        self.w(f"{node_id} {_attrs(**attrs)}")

    def block_node(self, cluster: _Cluster, node_id: str) -> None:
        layers = list(cluster.layers())
        for layer in layers:
            self.ids[layer.name] = node_id
        fill, border = self.use_family("block")
        count = sum(self.info[layer.name].params for layer in layers) if self.info else 0
        detail = f"{len(layers)} layers"
        if self.params:
            detail += f" \u00b7 {count:,} params"
        call = cluster.call
        tooltip = [call.instance, call.signature(), detail]
        label = _html_label(call_title(call), _small(detail))
        attrs = dict(
            label=label,
            fillcolor=f'"{fill}"',
            color=f'"{border}"',
            penwidth=1.5,
            margin='"0.16,0.06"',
            tooltip=_quoted(*tooltip),
        )
        self.w(f"{node_id} {_attrs(**attrs)}")

    def cluster(self, cluster: _Cluster, depth: int) -> None:
        w = self.w
        w(f"subgraph cluster_{self.clusters} {{")
        self.clusters += 1
        w.depth += 1
        fill = CLUSTER_FILLS[min(depth, len(CLUSTER_FILLS) - 1)]
        attrs = dict(
            label=_html_label(call_title(cluster.call, cluster.parent_instance)),
            labeljust="l",
            fontsize=10,
            style='"rounded,filled"',
            fillcolor=f'"{fill}"',
            color=f'"{CLUSTER_BORDER}"',
            penwidth=1,
            margin=8,
            tooltip=_quoted(cluster.call.instance, cluster.call.signature()),
        )
        w(f"graph {_attrs(**attrs)}")
        for item in cluster.items:
            if isinstance(item, _Cluster):
                self.cluster(item, depth + 1)
            else:
                self.layer_node(item)
        w.depth -= 1
        w("}")

    # ---- edges
    def edges(self) -> None:
        """One edge per (tensor, drawn reader); a tensor with several readers leaves its node
        through a junction dot that carries its shape once."""
        readers: dict[str, list[str]] = {layer.name: [] for layer in self.net.layers}
        for layer in self.net.layers:
            head = self.ids[layer.name]
            for name in layer.inputs:
                tail = self.ids[name]
                if tail == head:
                    continue  # inside a collapsed block
                if self.collapse and head in readers[name]:
                    continue
                readers[name].append(head)
        outputs = self.net.outputs
        for i, name in enumerate(outputs):
            out_id = f"out{i}"
            text = "output" if len(outputs) == 1 else f"output {i + 1}"
            attrs = dict(
                label=_html_label(_html(text)),
                fillcolor=f'"{OUTPUT_FILL}"',
                color=f'"{OUTPUT_FILL}"',
                fontcolor='"white"',
                fontsize=10,
                height=0.25,
                tooltip=_quoted(f"{text}: {name}"),
            )
            self.w(f"{out_id} {_attrs(**attrs)}")
            readers[name].append(out_id)

        w = self.w
        junctions = 0
        for layer in self.net.layers:
            heads = readers[layer.name]
            if not heads:
                continue
            tail = self.ids[layer.name]
            label = {}
            if self.shapes:
                label = dict(label=_html_label(_html(fmt_shape(self.info[layer.name].output_shape))))
            if self.shapes and len(heads) > 1:
                junction = f"j{junctions}"
                junctions += 1
                w(f"{junction} {_attrs(shape='point', width=0.05, color=EDGE_COLOR)}")
                w(f"{tail} -> {junction} {_attrs(arrowhead='none', **label)}")
                tail, label = junction, {}
            for head in heads:
                w(f"{tail} -> {head}" + (f" {_attrs(**label)}" if label else ""))


# ------------------------------------------------------------------------------ rendering

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
    """The diagram as a ``graphviz.Source`` (displays itself in Jupyter; ``.render()`` writes
    files).  Takes the options of :func:`to_dot`."""
    graphviz = _graphviz_module()
    return graphviz.Source(to_dot(net, **options), filename=f"{net.name}.gv", engine="dot")


def render(net: Network, fmt: str = "svg", **options) -> bytes:
    """The diagram drawn by Graphviz's ``dot``: ``svg``, ``png`` or ``pdf`` bytes.  Takes the
    options of :func:`to_dot`.  Raises :class:`CnnDslError` when Graphviz is missing."""
    if fmt not in FORMATS:
        raise CnnDslError(f"cannot render {fmt!r}: the formats are {', '.join(FORMATS)}")
    graphviz = _graphviz_module()
    if shutil.which("dot") is None:
        raise CnnDslError(INSTALL_DOT)
    if fmt == "png":
        options.setdefault("dpi", 144)
    text = to_dot(net, **options)
    try:
        return graphviz.pipe("dot", fmt, text.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise CnnDslError(INSTALL_DOT) from None
    except graphviz.CalledProcessError as e:
        stderr = (e.stderr or b"").decode("utf-8", "replace").strip()
        raise CnnDslError(f"Graphviz's dot failed on the diagram of {net.name!r}: {stderr}") from None
