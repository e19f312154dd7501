"""A Sphinx extension: diagrams and summary tables of ``.cnn`` specs in documentation.

In ``conf.py``::

    extensions = ["cnndsl.sphinx"]

then, in a document (paths are relative to the document; ``/specs/x.cnn`` is relative to the
source directory, as for Sphinx's own ``literalinclude``)::

    .. cnn-diagram:: ../specs/googlenet.cnn
       :collapse:
       :rankdir: LR
       :params:
       :summary:
       :caption: GoogLeNet, one box per inception module

    .. cnn-summary:: ../specs/vgg16.cnn

``cnn-diagram`` draws the network with :mod:`cnndsl.backends.graphviz` (Graphviz's ``dot`` must
be installed): HTML gets the SVG inline (hovering a layer shows its name, shape and parameters),
LaTeX a PDF; text, man and Texinfo output get the diagram's description.  Its options are the
diagram's (``collapse``, ``rankdir``, ``params``, ``no-shapes``, ``no-names``, ``no-legend``),
``summary`` (the summary table below the diagram), ``batch`` and ``dtype`` (for the memory line of
the summary), ``caption``, ``alt``, ``align``, ``name`` and ``class``.  ``cnn-summary`` gives
the table alone.  A page is rebuilt when its spec, or a file the spec imports, changes.  A spec
with errors gives a Sphinx error with cnndsl's located message (file, line, column, caret),
never a traceback.  The extension also registers the ``cnn`` Pygments lexer, so that
``.. code-block:: cnn`` highlights without cnndsl's entry point being installed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from . import CnnDslError, __version__
from .analysis.memory import DTYPE_BYTES
from .backends.graphviz.diagram import RANKDIRS

logger = logging.getLogger(__name__)

DTYPES = tuple(DTYPE_BYTES)  # the analysis's table, as `cnndsl summary --dtype` takes it


def _rankdir(argument: str) -> str:
    value = (argument or "").strip().upper()
    if value not in RANKDIRS:
        raise ValueError(f"{argument!r} unknown; choose from {', '.join(RANKDIRS)}")
    return value


class cnn_diagram(nodes.General, nodes.Element):  # noqa: N801 (docutils names nodes in lower case)
    """A drawn spec.  Attributes: ``dot`` (the DOT text), ``svg`` (the SVG, inline-ready),
    ``alt`` (a description), ``network`` (its name)."""


# --------------------------------------------------------------------------- directives


class _SpecDirective(SphinxDirective):
    """Reads the spec named by the argument, and notes every file it reads as a dependency."""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {
        "batch": directives.positive_int,
        "dtype": lambda arg: directives.choice(arg, DTYPES),
        "name": directives.unchanged,
        "class": directives.class_option,
    }

    def load(self):
        """The spec's analysed network; raises the directive's error with cnndsl's message."""
        import cnndsl

        self.spec_rel, path = self.env.relfn2path(self.arguments[0])
        self.env.note_dependency(path)
        try:
            net = cnndsl.load(path)
        except CnnDslError as e:
            # the files at fault (an imported one, perhaps), so that fixing them rebuilds
            for d in e.diagnostics:
                for where in (d.location, *(loc for _, loc in d.notes)):
                    if where is not None and Path(where.file).is_file():
                        self.env.note_dependency(str(Path(where.file).resolve()))
            raise self.error(f"{self.name} {self.spec_rel}:\n{e}") from None
        for file in net._sources:  # the spec and every file it imports
            if Path(file).is_file():
                self.env.note_dependency(str(Path(file).resolve()))
        return net

    def summary_nodes(self, net) -> list[nodes.Node]:
        from .report import cells

        header, rows, totals_lines = cells(
            net, self.options.get("batch", 1), self.options.get("dtype", "float32")
        )
        table = nodes.table(classes=["cnn-summary", *self.options.get("class", [])])
        table += nodes.title(net.name, net.name)
        group = nodes.tgroup(cols=len(header))
        table += group
        for i, cell in enumerate(header):
            group += nodes.colspec(colwidth=max(len(cell), *(len(row[i]) for row in rows)))
        group += nodes.thead("", _row(header))
        group += nodes.tbody("", *(_row(r) for r in rows))
        totals = nodes.bullet_list(classes=["cnn-summary-totals"])
        for line in totals_lines:
            totals += nodes.list_item("", nodes.paragraph(line, line))
        self.set_source_info(table)
        return [table, totals]


def _row(cells: list[str]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        row += nodes.entry("", nodes.paragraph(cell, cell))
    return row


class CnnSummary(_SpecDirective):
    """``.. cnn-summary:: spec.cnn``: the spec's summary table (``cnndsl summary``)."""

    def run(self) -> list[nodes.Node]:
        net = self.load()
        result = self.summary_nodes(net)
        self.add_name(result[0])
        return result


class CnnDiagram(_SpecDirective):
    """``.. cnn-diagram:: spec.cnn``: the spec's diagram, and optionally its summary table."""

    option_spec = {
        **_SpecDirective.option_spec,
        "collapse": directives.flag,
        "rankdir": _rankdir,
        "params": directives.flag,
        "no-shapes": directives.flag,
        "no-names": directives.flag,
        "no-legend": directives.flag,
        "summary": directives.flag,
        "caption": directives.unchanged,
        "alt": directives.unchanged,
        "align": lambda arg: directives.choice(arg, ("left", "center", "right")),
    }

    def run(self) -> list[nodes.Node]:
        from .backends.graphviz import render_dot, to_dot

        net = self.load()
        options = self.options
        try:
            dot = to_dot(
                net,
                collapse="collapse" in options,
                rankdir=options.get("rankdir", "TB"),
                shapes="no-shapes" not in options,
                params="params" in options,
                names="no-names" not in options,
                legend="no-legend" not in options,
            )
            svg = render_dot(dot, "svg", net.name).decode("utf-8")
        except CnnDslError as e:
            raise self.error(f"{self.name} {self.spec_rel}:\n{e}") from None
        serial = self.env.new_serialno("cnn-diagram")
        alt = options.get("alt") or f"diagram of the network {net.name} ({self.spec_rel})"
        node = cnn_diagram(
            dot=dot, svg=_inline_svg(svg, f"cnn{serial}-", alt), alt=alt, network=net.name,
            classes=["cnn-diagram", *options.get("class", [])],
        )
        self.set_source_info(node)
        if "caption" in options or "align" in options:
            figure = nodes.figure("", node, classes=["cnn-diagram-figure"])
            if "align" in options:
                figure["align"] = options["align"]
            if "caption" in options:
                inline, messages = self.parse_inline(options["caption"])
                figure += nodes.caption(options["caption"], "", *inline)
                figure += messages
            self.set_source_info(figure)
            node = figure
        self.add_name(node)
        result: list[nodes.Node] = [node]
        if "summary" in options:
            result.extend(self.summary_nodes(net))
        return result


_SVG_REFERENCE = re.compile(r'\b(id="|href="#|url\(#)')


def _inline_svg(svg: str, prefix: str, alt: str) -> str:
    """Graphviz's SVG document as an element to inline in HTML: no XML prolog or doctype, ids
    made unique on the page, scaled to the width available, described for screen readers."""
    svg = svg[svg.index("<svg") :]
    svg = _SVG_REFERENCE.sub(lambda m: m.group(1) + prefix, svg)
    label = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace(
        "<svg", f'<svg role="img" aria-label="{label}" style="max-width: 100%; height: auto"', 1
    )


# ------------------------------------------------------------------------------ writers


def _visit_html(self, node: cnn_diagram) -> None:
    classes = " ".join(node["classes"])
    self.body.append(f'<div class="{classes}">\n{node["svg"]}</div>\n')
    raise nodes.SkipNode


def _visit_latex(self, node: cnn_diagram) -> None:
    from .backends.graphviz import render_dot

    name = f"cnn-{hashlib.sha1(node['dot'].encode('utf-8')).hexdigest()[:16]}.pdf"
    out = Path(self.builder.outdir) / name
    if not out.exists():
        try:
            out.write_bytes(render_dot(node["dot"], "pdf", node["network"]))
        except CnnDslError as e:
            logger.warning("cnn-diagram: %s", e, location=node)
            raise nodes.SkipNode from None
    self.body.append(f"\n\\sphinxincludegraphics[]{{{name}}}\n")
    raise nodes.SkipNode


def _visit_text(self, node: cnn_diagram) -> None:
    self.add_text(f"[{node['alt']}]")
    raise nodes.SkipNode


def _visit_body(self, node: cnn_diagram) -> None:
    self.body.append(f"[{node['alt']}]\n")
    raise nodes.SkipNode


def _depart(self, node: cnn_diagram) -> None:  # never reached: every visit skips the node
    pass


def setup(app) -> dict:
    from .lexer import CnnLexer

    app.add_node(
        cnn_diagram,
        html=(_visit_html, _depart),
        latex=(_visit_latex, _depart),
        text=(_visit_text, _depart),
        man=(_visit_body, _depart),
        texinfo=(_visit_body, _depart),
    )
    app.add_directive("cnn-diagram", CnnDiagram)
    app.add_directive("cnn-summary", CnnSummary)
    for alias in CnnLexer.aliases:
        app.add_lexer(alias, CnnLexer)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
