"""The diagram of a network: what to draw (node IDs, edges, junctions, the main path) and the
DOT text that draws it.

- one rounded box per layer, labelled in the spec's own notation (``3x3+1(S) conv 64 relu``),
  with the layer name in small type (``names``) and its parameters (``params``), filled with
  the colour of its family (convolution, pooling, normalization ...);
- add / concat / multiply as small circles (⊕, ‖, ⊗) where their inputs join;
- each tensor's shape (``112x112x64``) on the edge leaving its layer (``shapes``); a tensor read
  by several layers leaves through one small junction dot, so its shape is written once;
- every block call as a labelled cluster (``inception(64, 96, 128, 16, 32, 32)``, or
  ``block1: stage(64, 2)`` when the call was named), nested calls as nested clusters; with
  ``collapse`` each top-level block call is one node instead;
- the network's outputs as dark ``output`` terminals, and a legend of the families present;
- what exists only in training -- the outputs marked ``(training)`` and the layers only they
  need (GoogLeNet's auxiliary heads) -- with dashed borders and edges, their terminals white
  and labelled ``(training)``, and ``training only`` in the legend.

The clusters are the scopes of the call tree the code generators write functions from
(:func:`cnndsl.backends.codegen.tree.call_tree`).  Every piece of text from the network goes
through :func:`.escape.html` (HTML-like labels) or :func:`.escape.quoted` (quoted strings);
node IDs are generated (``n0``, ``n1`` ...), never names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...ir import Network
from ...ir.base import CallSite, Layer, fmt_shape
from ..codegen.tree import CallScope, call_tree, local_name
from .escape import attrs as _attrs
from .escape import html as _html
from .escape import html_label as _html_label
from .escape import quoted as _quoted

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
# Sizes, in inches.
NODESEP = 0.25
NODE_MARGIN = 0.12
MERGE_WIDTH = 0.3
JUNCTION_WIDTH = 0.05
SPINE_WEIGHT = 10  # Graphviz edge weight of the main path (the default is 1)
# Cluster backgrounds by nesting depth (outermost first), and their borders.
CLUSTER_FILLS = ("#f5f7f9", "#ebeff3", "#e1e7ec")
CLUSTER_BORDER = "#90a4ae"


def _small(text: str, size: int = 8, color: str = MUTED) -> str:
    return f'<FONT POINT-SIZE="{size}" COLOR="{color}">{text}</FONT>'


def call_title(call: CallSite, local: str) -> str:
    """A block call as HTML-like label text: ``inception(64, 96, 128)``, or
    ``<B>block1</B>: stage(64, 2)`` when the spec named the call (``local``: its name in the
    call around it)."""
    signature = _html(call.signature())
    if not call.named:
        return signature
    return f"<B>{_html(local)}</B>: {signature}"


def _text_width(html: str, size: float) -> float:
    """A generous estimate, in inches, of the width of one line of label text (Helvetica's
    characters average about half an em; bold ones a little more)."""
    bold = sum(len(m) for m in re.findall(r"<B>(.*?)</B>", html))
    text = re.sub(r"<[^>]*>", "", html)
    chars = len(re.sub(r"&[a-z]+;|&#[0-9]+;", "x", text))
    return (chars * 0.52 + bold * 0.06) * size / 72


def _drawn_name(layer: Layer, scope: CallScope) -> str:
    """A layer's name without the prefix of the block call it is drawn in (its cluster says
    that): ``conv_1`` for ``block1_conv_1`` inside ``block1: stage(64, 2)``."""
    return local_name(layer.name, scope.prefix) or layer.name


def _ancestry(scope: CallScope) -> tuple[CallScope, ...]:
    """The scopes from the network's down to ``scope``."""
    chain = []
    while scope is not None:
        chain.append(scope)
        scope = scope.parent
    return tuple(reversed(chain))


def _innermost_common(scopes: list[CallScope]) -> CallScope:
    """The innermost scope that holds every one of ``scopes``."""
    chains = [_ancestry(scope) for scope in scopes]
    common = chains[0][0]
    for level in zip(*chains):
        if any(scope is not level[0] for scope in level):
            break
        common = level[0]
    return common


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class _Edge:
    tail: str
    head: str
    label: str | None = None  # the shape, as HTML-like label text
    to_junction: bool = False
    weight: int | None = None
    invisible: bool = False
    training: bool = False  # it leads only to what exists in training (dashed)


class Diagram:
    """Lays out what to draw (node IDs, edges, junctions), then writes it (:meth:`dot`).

    ``info`` is the network's analysis (None when neither ``shapes`` nor ``params`` asks for
    it).  Node IDs: ``n<i>`` layers, ``b<i>`` collapsed block calls, ``j<i>`` junctions,
    ``out<i>`` output terminals.
    """

    def __init__(self, net: Network, info, *, collapse, rankdir, shapes, params) -> None:
        self.net, self.info = net, info
        self.collapse, self.rankdir, self.shapes, self.params = collapse, rankdir, shapes, params
        self.tree = call_tree(net)  # a cluster per block call
        self.ids: dict[str, str] = {}  # layer name -> ID of the node that draws it
        self.where: dict[str, CallScope] = {}  # node ID -> the cluster holding it
        self._number(self.tree)
        self.outputs = [f"out{i}" for i in range(len(net.outputs))]
        self.training_only = net.training_only()  # layers only the training outputs need
        self.training_ids = {  # the nodes that exist only in training
            out_id
            for name, out_id in zip(net.outputs, self.outputs)
            if name in net.training_outputs
        }
        drawn: dict[str, list[str]] = {}
        for layer in net.layers:
            drawn.setdefault(self.ids[layer.name], []).append(layer.name)
        self.training_ids |= {
            node_id for node_id, names in drawn.items() if set(names) <= self.training_only
        }
        self.edges: list[_Edge] = []
        self.junctions: dict[CallScope, list[str]] = {}  # cluster -> its junctions' IDs
        self._connect()

    def _number(self, scope: CallScope) -> None:
        for i, item in enumerate(scope.items):
            if isinstance(item, Layer):
                node_id = f"n{len(self.ids)}"
                self.ids[item.name] = node_id
                self.where[node_id] = scope
            elif self.collapse:  # only top-level calls reach here: inner ones are inside
                for layer in item.nodes:
                    self.ids[layer.name] = f"b{i}"
                self.where[f"b{i}"] = self.tree
            else:
                self._number(item)

    def _connect(self) -> None:
        """One edge per (tensor, drawn reader); a tensor with several readers (with ``shapes``)
        leaves through a junction dot placed in the innermost cluster that holds them all."""
        readers: dict[str, list[str]] = {layer.name: [] for layer in self.net.layers}
        for layer in self.net.layers:
            head = self.ids[layer.name]
            for name in layer.inputs:
                tail = self.ids[name]
                if tail == head or (self.collapse and head in readers[name]):
                    continue  # inside one collapsed block, or already drawn
                readers[name].append(head)
        for name, out_id in zip(self.net.outputs, self.outputs):
            readers[name].append(out_id)
            self.where[out_id] = self.tree
        for layer in self.net.layers:
            heads = readers[layer.name]
            if not heads:
                continue
            tail = self.ids[layer.name]
            label = _html(fmt_shape(self.info[layer.name].output_shape)) if self.shapes else None
            if label is not None and len(heads) > 1:
                junction = f"j{sum(len(j) for j in self.junctions.values())}"
                inner = _innermost_common([self.where[head] for head in heads])
                self.junctions.setdefault(inner, []).append(junction)
                training = all(head in self.training_ids for head in heads)
                self.edges.append(_Edge(tail, junction, label, to_junction=True, training=training))
                tail, label = junction, None
            self.edges.extend(
                _Edge(tail, head, label, training=head in self.training_ids) for head in heads
            )
        self._find_spine()

    def _find_spine(self) -> None:
        """The main path runs from the first output back through first inputs (and from a
        merge of three or more alike branches, inception's, to where they fan out).  Its
        nodes share a group and its edges weigh more, so Graphviz keeps it one straight
        column and routes skips and side branches round it, instead of letting it drift
        sideways block after block (ResNets did)."""
        spine: list[str] = [self.outputs[0]]
        fans: list[tuple[str, str]] = []  # (source, merge) of fans on the path
        name: str | None = self.net.outputs[0]
        while name is not None:
            if self.ids[name] != spine[-1]:
                spine.append(self.ids[name])
            inputs = self.net[name].inputs
            if len(inputs) > 2:  # an inception-like fan: its branches are alike, none is main
                source = self._fan_source(inputs)
                if source is not None and self.ids[source] != spine[-1]:
                    fans.append((self.ids[source], spine[-1]))
                name = source
            else:
                name = inputs[0] if inputs else None
        links = set(zip(spine[1:], spine[:-1]))  # (tail, head) along the path
        feeds = {edge.head: edge.tail for edge in self.edges if edge.to_junction}
        on_path = {j for j, tail in feeds.items() if tail in spine}
        self.spine = set(spine) | on_path
        for edge in self.edges:
            if (feeds.get(edge.tail, edge.tail), edge.head) in links or edge.head in on_path:
                edge.weight = SPINE_WEIGHT
        # An invisible edge, in the middle of the source's edges (kept in order), holds a
        # fan's merge under its source, with the branches either side, in the spec's order.
        junction_of = {tail: j for j, tail in feeds.items()}
        self.ordered: set[str] = set()
        for source, merge in fans:
            tail = junction_of.get(source, source)
            out = [i for i, edge in enumerate(self.edges) if edge.tail == tail]
            middle = out[len(out) // 2 - 1] + 1 if len(out) > 1 else len(self.edges)
            self.edges.insert(middle, _Edge(tail, merge, weight=SPINE_WEIGHT, invisible=True))
            self.ordered.add(tail)

    def _fan_source(self, names: tuple[str, ...]) -> str | None:
        """The latest layer that every one of ``names`` depends on (None if there is none)."""
        common: set[str] | None = None
        for name in names:
            seen, todo = set(), [name]
            while todo:
                current = todo.pop()
                if current not in seen:
                    seen.add(current)
                    todo.extend(self.net[current].inputs)
            common = seen if common is None else common & seen
        order = {layer.name: i for i, layer in enumerate(self.net.layers)}
        return max(common, key=order.__getitem__) if common else None

    # ---- writing
    def dot(self, *, names: bool, legend: bool, dpi: int | None) -> str:
        self.names = names
        self.families: list[str] = []  # families drawn
        self.merges: list[str] = []  # merge kinds drawn
        self.clusters = 0
        self.spacers = 0
        w = self.w = _Writer()
        w.depth = 1
        self.body(self.tree, depth=0)
        for edge in self.edges:
            attrs = {}
            if edge.to_junction:
                attrs["arrowhead"] = "none"
            if edge.invisible:
                attrs["style"] = "invis"
            elif edge.training:
                attrs["style"] = "dashed"
            if edge.label is not None:
                attrs["label"] = f"<{edge.label}>"
            if edge.weight is not None:
                attrs["weight"] = edge.weight
            w(f"{edge.tail} -> {edge.head}" + (f" {_attrs(**attrs)}" if attrs else ""))
        body, w.lines, w.depth = w.lines, [], 0
        w("// Generated by cnndsl (cnndsl.backends.graphviz); render with: dot -Tsvg")
        w(f"digraph {_quoted(self.net.name)} {{")
        w.depth = 1
        self.header(legend, dpi)
        w.lines.extend(body)
        w.depth = 0
        w("}")
        return w.text()

    def body(self, scope: CallScope, depth: int) -> None:
        """The nodes (and junctions) of a cluster, its inner clusters in place."""
        for i, item in enumerate(scope.items):
            if isinstance(item, Layer):
                self.layer_node(item, scope)
            elif self.collapse:
                self.block_node(item, f"b{i}")
            else:
                self.cluster(item, depth)
        for junction in self.junctions.get(scope, ()):
            attrs = dict(shape="point", width=JUNCTION_WIDTH, color=EDGE_COLOR)
            self.w(f"{junction} {_attrs(**attrs, **self.group(junction))}")
        if scope.site is None:
            self.output_nodes()

    def header(self, legend: bool, dpi: int | None) -> None:
        w = self.w
        graph = dict(
            rankdir=self.rankdir,
            label=self.title(legend),
            labelloc="t",
            fontname=f'"{FONT}"',
            fontsize=12,
            fontcolor=f'"{INK}"',
            bgcolor='"white"',
            nodesep=NODESEP,
            ranksep=0.3,
            newrank="true",
            pad=0.2,
        )
        if dpi:
            graph["dpi"] = dpi
        w(f"graph {_attrs(**graph)}")
        node = dict(
            shape="box",
            style='"rounded,filled"',
            fontname=f'"{FONT}"',
            fontsize=11,
            fontcolor=f'"{INK}"',
            height=0.3,
            margin=f'"{NODE_MARGIN},0.04"',
            penwidth=1,
        )
        w(f"node {_attrs(**node)}")
        edge = dict(
            fontname=f'"{FONT}"',
            fontsize=9,
            fontcolor=f'"{MUTED}"',
            color=EDGE_COLOR,
            arrowsize=0.6,
            penwidth=1,
        )
        w(f"edge {_attrs(**edge)}")

    def title(self, legend: bool) -> str:
        """The graph's label: the network's name, its parameters (``params``), the legend."""
        rows = [f'<FONT POINT-SIZE="14"><B>{_html(self.net.name)}</B></FONT>']
        if self.params:
            rows.append(_small(f"{self.info.total_params:,} parameters", 10))
        if legend:
            rows.append(self.legend_table())
        return (
            '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">'
            + "".join(f"<TR><TD>{row}</TD></TR>" for row in rows)
            + "</TABLE>>"
        )

    def legend_table(self) -> str:
        """Colour swatches for the families drawn, five to a row (ten when left to right)."""
        cells = []
        swatches = [(f, *FAMILIES[f], "") for f in FAMILIES if f in self.families]
        if self.training_ids:  # a dashed white swatch
            swatches.append(("", "training only", "#ffffff", OUTPUT_FILL, ' STYLE="dashed"'))
        for family, text, fill, border, style in swatches:
            if family == "merge" and self.merges:
                text = ", ".join(f"{MERGE_SYMBOLS[k]} {k}" for k in MERGE_KINDS if k in self.merges)
            cells.append(
                f'<TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1"{style} WIDTH="14" HEIGHT="10"'
                f' FIXEDSIZE="TRUE"></TD><TD ALIGN="LEFT">{_small(_html(text), 9, INK)}</TD>'
            )
        per_row = 5 if self.rankdir in ("TB", "BT") else 10
        rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
        return (
            '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="3" CELLPADDING="1">'
            + "".join("<TR>" + "<TD> </TD>".join(row) + "</TR>" for row in rows)
            + "</TABLE>"
        )

    # ---- nodes
    def group(self, node_id: str) -> dict[str, str]:
        """The main path's nodes share a Graphviz group (which keeps it straight); a fan's
        source keeps its edges in order."""
        attrs = {"group": "main"} if node_id in self.spine else {}
        if node_id in self.ordered:
            attrs["ordering"] = "out"
        return attrs

    def use_family(self, family: str) -> tuple[str, str]:
        if family not in FAMILIES:
            family = "other"
        if family not in self.families:
            self.families.append(family)
        _, fill, border = FAMILIES[family]
        return fill, border

    def layer_node(self, layer: Layer, scope: CallScope) -> None:
        fill, border = self.use_family(layer.family)
        shape = self.info[layer.name].output_shape if self.info else None
        count = self.info[layer.name].params if self.info else 0
        tooltip = [layer.name, layer.notation()]
        if shape is not None:
            tooltip.append(fmt_shape(shape))
        if count:
            tooltip.append(f"{count:,} parameters")
        training = layer.name in self.training_only
        if training:
            tooltip.append("training only")
        if layer.family == "merge" and layer.kind in MERGE_SYMBOLS:
            if layer.kind not in self.merges:
                self.merges.append(layer.kind)
            attrs: dict = dict(
                label=f"<{MERGE_SYMBOLS[layer.kind]}>",
                shape="circle",
                fixedsize="true",
                width=MERGE_WIDTH,
                fontsize=14,
            )
        else:
            lines = [_html(layer.notation())]
            if self.names and not (layer.kind == "input" and layer.name == "input"):
                lines.append(_small(_html(_drawn_name(layer, scope))))
            if self.params and count:
                lines.append(_small(f"{count:,} params"))
            attrs = dict(label=_html_label(*lines))
            if layer.kind == "input":
                attrs["penwidth"] = 1.5
        if training:
            attrs["style"] = '"filled,dashed"' if attrs.get("shape") else '"rounded,filled,dashed"'
        attrs.update(fillcolor=f'"{fill}"', color=f'"{border}"', tooltip=_quoted(*tooltip))
        node_id = self.ids[layer.name]
        self.w(f"{node_id} {_attrs(**attrs, **self.group(node_id))}")

    def block_node(self, scope: CallScope, node_id: str) -> None:
        """A collapsed block call: its call, its number of layers (and parameters)."""
        layers = scope.nodes
        fill, border = self.use_family("block")
        detail = f"{len(layers)} layers"
        if self.params:
            count = sum(self.info[layer.name].params for layer in layers)
            detail += f" \u00b7 {count:,} params"
        call = scope.site
        attrs = dict(
            label=_html_label(call_title(call, scope.local), _small(detail)),
            fillcolor=f'"{fill}"',
            color=f'"{border}"',
            penwidth=1.5,
            margin='"0.16,0.06"',
            tooltip=_quoted(call.instance, call.signature(), detail),
        )
        if node_id in self.training_ids:
            attrs["style"] = '"rounded,filled,dashed"'
            attrs["tooltip"] = _quoted(call.instance, call.signature(), detail, "training only")
        self.w(f"{node_id} {_attrs(**attrs, **self.group(node_id))}")

    def cluster(self, scope: CallScope, depth: int) -> None:
        w = self.w
        w(f"subgraph cluster_{self.clusters} {{")
        self.clusters += 1
        w.depth += 1
        call = scope.site
        title = call_title(call, scope.local)
        size = 10 if depth == 0 else 9
        attrs = dict(
            label=_html_label(title),
            labeljust="l",
            fontsize=size,
            style='"rounded,filled"',
            fillcolor=f'"{CLUSTER_FILLS[min(depth, len(CLUSTER_FILLS) - 1)]}"',
            color=f'"{CLUSTER_BORDER}"',
            penwidth=1,
            margin=8,
            tooltip=_quoted(call.instance, call.signature()),
        )
        w(f"graph {_attrs(**attrs)}")
        self.body(scope, depth + 1)
        entry, entry_width = self.entry(scope)
        # Edges come in at the middle of the top node; when the label (top left) would reach
        # that far, an invisible spacer left of that node moves it clear of the label.
        width = _text_width(title, size) + 0.25 - NODESEP - entry_width / 2
        if entry is not None and self.rankdir in ("TB", "BT") and width > 0:
            spacer = f"s{self.spacers}"
            self.spacers += 1
            width = f"{width:.2f}"
            box = _attrs(style="invis", label='""', width=width, height=0.02, fixedsize="true")
            w(f"{spacer} {box}")
            w(f"{{rank=same; {spacer} -> {entry} {_attrs(style='invis', weight=0)}}}")
        w.depth -= 1
        w("}")

    def entry(self, scope: CallScope) -> tuple[str | None, float]:
        """The node at the top of a cluster (a junction fed from outside, or its first layer),
        and an estimate of its width in inches."""
        for edge in self.edges:
            if edge.to_junction and edge.head in self.junctions.get(scope, ()):
                if scope not in _ancestry(self.where[edge.tail]):
                    return edge.head, JUNCTION_WIDTH
        first = scope.items[0]
        if not isinstance(first, Layer):
            return None, 0.0
        if first.family == "merge" and first.kind in MERGE_SYMBOLS:
            return self.ids[first.name], MERGE_WIDTH
        name = _drawn_name(first, scope)
        lines = [_text_width(_html(first.notation()), 11), _text_width(_html(name), 8)]
        return self.ids[first.name], max(lines) + 2 * NODE_MARGIN

    def output_nodes(self) -> None:
        outputs = self.net.outputs
        for i, (name, out_id) in enumerate(zip(outputs, self.outputs)):
            text = "output" if len(outputs) == 1 else f"output {i + 1}"
            training = out_id in self.training_ids
            if training:
                text += " (training)"
            attrs = dict(
                label=f"<{text}>",
                fillcolor=f'"{"#ffffff" if training else OUTPUT_FILL}"',
                color=f'"{OUTPUT_FILL}"',
                fontcolor=f'"{INK}"' if training else '"white"',
                fontsize=10,
                height=0.25,
                tooltip=_quoted(f"{text}: {name}"),
            )
            if training:
                attrs["style"] = '"rounded,filled,dashed"'
            self.w(f"{out_id} {_attrs(**attrs, **self.group(out_id))}")
