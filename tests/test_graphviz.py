"""The Graphviz back end: golden DOT, determinism, options, escaping, every zoo spec drawn,
and the errors without Graphviz.

DOT tests need nothing; the tests that draw (SVG, PNG) skip themselves without Graphviz's
``dot`` or the ``graphviz`` package.  ``CNNDSL_UPDATE_GOLDEN=1`` rewrites tests/golden/dot/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.backends import graphviz as gv
from cnndsl.backends.codegen.tree import call_tree
from cnndsl.backends.graphviz.escape import quoted
from cnndsl.errors import CnnDslError
from cnndsl.ir import Layer, Network
from conftest import ROOT, SPEC_FILES
from ir_strategies import PROVENANCE_BASES, scrambled
from scaling import assert_linear

DATA = ROOT / "tests" / "data" / "graphviz"
GOLDEN = ROOT / "tests" / "golden" / "dot"
VGG16 = ROOT / "specs" / "vgg16.cnn"
MINI = DATA / "mini_inception.cnn"
TWO_HEADS = DATA / "two_heads.cnn"

try:
    import graphviz  # noqa: F401

    HAS_PACKAGE = True
except ImportError:
    HAS_PACKAGE = False
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None or not HAS_PACKAGE,
    reason="needs Graphviz's dot program and the graphviz package",
)
SVG = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"


# ------------------------------------------------------------------------------ helpers


def load(path) -> Network:
    return cnndsl.load(path)


def skeleton(dot: str) -> list[str]:
    """The DOT with every quoted string and HTML-like label replaced by a placeholder: the
    statements, IDs and punctuation that text from the network must never change."""
    out, i, n = [], 0, len(dot)
    while i < n:
        c = dot[i]
        if c == '"':
            i += 1
            while dot[i] != '"':
                i += 2 if dot[i] == "\\" else 1
            out.append("Q")
            i += 1
        elif c == "<" and i + 1 < n and dot[i + 1] != "-":  # an HTML-like label (not "->")
            depth = 0
            while True:
                depth += {"<": 1, ">": -1}.get(dot[i], 0)
                i += 1
                if depth == 0:
                    break
            out.append("H")
        elif c == "/" and dot.startswith("//", i):  # a comment (ours): to the end of the line
            while i < n and dot[i] != "\n":
                i += 1
        else:
            out.append(c)
            i += 1
    return re.sub(r"(width|weight)=[0-9.]+", r"\1=N", "".join(out)).splitlines()


def svg_root(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def svg_texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def svg_everything(root: ET.Element) -> str:
    """All the text of an SVG: the drawn text and the tooltips."""
    tips = [el.get(XLINK_TITLE) for el in root.iter() if el.get(XLINK_TITLE)]
    return "\n".join(svg_texts(root) + tips)


def svg_counts(root: ET.Element) -> tuple[int, int, int]:
    classes = [g.get("class") for g in root.iter(f"{SVG}g")]
    return classes.count("node"), classes.count("edge"), classes.count("cluster")


def renamed(net: Network, *, name=None, layers=None, instances=None, extra_arg=None) -> Network:
    """A copy of ``net`` with its name, some layer names and some call instances replaced
    (inputs and outputs follow), and optionally one more argument on every block call.

    The copy is made without validation: the IR refuses names that are not identifiers, and
    these tests check that the diagrams would stay safe even if it did not."""
    layers = layers or {}
    instances = instances or {}
    rename = lambda n: layers.get(n, n)  # noqa: E731

    def call(c):
        update = {"instance": instances.get(c.instance, c.instance)}
        if extra_arg is not None:
            update["args"] = {**c.args, "extra": extra_arg}
            update["call"] = c.call[:-1] + f", {extra_arg})"
        return c.model_copy(update=update)

    copied = [
        layer.model_copy(
            update={
                "name": rename(layer.name),
                "inputs": tuple(rename(i) for i in layer.inputs),
                "calls": tuple(call(c) for c in layer.calls),
            }
        )
        for layer in net.layers
    ]
    out = Network.model_construct(
        name=net.name if name is None else name,
        layers=copied,
        outputs=[rename(o) for o in net.outputs],
    )
    out._index = {layer.name: layer for layer in copied}
    out._sources = {}
    return out


# ------------------------------------------------------------------------------ golden DOT

GOLDENS = {
    "vgg16": (VGG16, {}),
    "mini_inception_params": (MINI, {"params": True}),
    "two_heads": (TWO_HEADS, {}),
    "two_heads_collapsed_lr": (TWO_HEADS, {"collapse": True, "rankdir": "LR"}),
}


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_golden_dot(name):
    spec, options = GOLDENS[name]
    text = gv.to_dot(load(spec), **options)
    path = GOLDEN / f"{name}.dot"
    if os.environ.get("CNNDSL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden {path}: run with CNNDSL_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name}: DOT differs from {path}"


def test_dot_is_deterministic_across_processes():
    code = (
        "import sys, cnndsl; from cnndsl.backends.graphviz import to_dot;"
        f"sys.stdout.write(to_dot(cnndsl.load({str(MINI)!r}), params=True))"
    )
    runs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert r.returncode == 0, r.stderr
        runs.add(r.stdout)
    runs.add(gv.to_dot(load(MINI), params=True))
    assert len(runs) == 1


# ------------------------------------------------------------------------------ what is drawn


def test_layers_in_notation_with_shapes_on_edges():
    dot = gv.to_dot(load(VGG16))
    assert "<input 224x224x3>" in dot
    assert "3x3+1(S) conv 64 relu" in dot
    assert "2x2+2(V) maxpool" in dot and "dense 1000 softmax" in dot
    assert 'label=<112x112x64>' in dot  # the shape leaving block1's pool
    assert 'out0 [label=<output>' in dot and re.search(r"n\d+ -> out0 \[label=<1000>", dot)
    plain = gv.to_dot(load(VGG16), shapes=False)
    assert "112x112x64>" not in plain and "label=<1000>" not in plain


def test_names_params_and_legend_options():
    net = load(VGG16)
    dot = gv.to_dot(net, params=True)
    assert "1,792 params" in dot  # block1's first convolution
    assert "138,357,544 parameters" in dot  # the total, under the title
    assert ">conv_1</FONT>" in dot and ">predictions</FONT>" in dot  # names (local in clusters)
    quiet = gv.to_dot(net, names=False, legend=False)
    assert ">conv_1</FONT>" not in quiet and "BGCOLOR" not in quiet
    assert "1,792 params" not in gv.to_dot(net)


def test_legend_lists_only_the_families_drawn():
    dot = gv.to_dot(load(VGG16))
    for present in ("input", "convolution", "pooling", "dense", "reshape", "regularization"):
        assert f">{present}</FONT>" in dot
    for absent in ("normalization", "activation", "block call"):
        assert f">{absent}</FONT>" not in dot
    collapsed = gv.to_dot(load(VGG16), collapse=True)
    assert ">block call</FONT>" in collapsed and ">convolution</FONT>" not in collapsed
    mini = gv.to_dot(load(MINI))
    assert "\u2295 add, \u2016 concat" in mini  # the merge kinds drawn, with their symbols


AUX_HEADS = """\
network aux_heads
input 16x16x3
block head(n) { gap -> dense n }
x = 3x3(S) conv 8 -> relu
aux1 = head(3)
x -> 3x3(S) conv 8 relu
aux2 = 1x1 conv 2 -> flatten -> dense 4
x -> gap
logits = dense 5
output logits, aux2 (training), aux1 (training)
"""


def test_training_outputs_and_the_layers_only_they_need_are_dashed():
    """What exists only in training (GoogLeNet's aux heads) is drawn dashed, with white
    terminals labelled (training) and a legend entry; what inference computes is not."""
    net = cnndsl.loads(AUX_HEADS, "aux_heads.cnn")
    for collapse in (False, True):
        dot = gv.to_dot(net, collapse=collapse)
        nodes = dict(re.findall(r"^\s*(\w+) (\[.*\])$", dot, re.M))
        dashed = {node for node, attrs in nodes.items() if "dashed" in attrs}
        drawn = {node for node in nodes if re.fullmatch(r"[nb]\d+", node)}
        assert "<output 2 (training)>" in nodes["out1"] and "<output 3 (training)>" in nodes["out2"]
        assert "<output 1>" in nodes["out0"] and "out0" not in dashed
        assert {"out1", "out2"} <= dashed
        only = {n for n in drawn if re.search(r"training only", nodes[n])}
        assert only == dashed & drawn and len(only) == (5 if collapse else 6)
        names = {re.search(r'tooltip="([^\\"]+)', nodes[n]).group(1) for n in drawn - only}
        assert names >= {"conv_1", "x", "globalavgpool_1", "logits"}
        edges = re.findall(r"^\s*(\w+) -> (\w+)(.*)$", dot, re.M)
        for tail, head, attrs in edges:
            assert ("dashed" in attrs) == (head in dashed), (tail, head)
        assert ">training only</FONT>" in dot
    assert "training only" not in gv.to_dot(load(VGG16))


def test_every_layer_kind_has_a_family_colour():
    for kind, cls in Layer.registry().items():
        assert cls.family in gv.FAMILIES, f"{kind}: family {cls.family!r} has no colour"


def test_merges_are_circles_joining_their_inputs():
    dot = gv.to_dot(load(TWO_HEADS))
    assert dot.count("shape=circle") == 2 and "<\u2297>" in dot  # two squeeze-excite multiplies
    mini = gv.to_dot(load(MINI))
    assert "<\u2016>" in mini and "<\u2295>" in mini
    # the residual add reads the block's input (the skip) through the junction that feeds
    # the block; the main path (first inputs) weighs more
    assert re.search(r"^  j\d+ -> n13$", mini, re.M)
    assert re.search(r"^  n12 -> n13 \[label=<16x16x224>, weight=10\]$", mini, re.M)


def test_a_tensor_with_several_readers_leaves_through_one_junction():
    dot = gv.to_dot(load(MINI))
    # conv_1 feeds the three inception branches: one labelled edge to a junction, three out
    assert re.search(r"n1 -> (j\d+) \[arrowhead=none, label=<16x16x64>, weight=10\]", dot)
    junction = re.search(r"n1 -> (j\d+)", dot).group(1)
    assert len(re.findall(rf"^  {junction} -> n\d+", dot, re.M)) == 4  # 3 branches + 1 invisible


def test_clusters_named_and_nested():
    vgg = gv.to_dot(load(VGG16))
    assert vgg.count("subgraph cluster_") == 5
    assert "<B>block1</B>: stage(64, 2)" in vgg and "<B>block5</B>: stage(512, 3)" in vgg
    mini = gv.to_dot(load(MINI))
    assert "<B>inc1</B>: inception(64, 96, 128, 32)" in mini
    assert "label=<residual(224)>" in mini  # an unnamed call: its signature alone
    nested = gv.to_dot(load(TWO_HEADS))
    depth, deepest = 0, 0
    for line in nested.splitlines():
        if "subgraph cluster_" in line:
            depth += 1
            deepest = max(deepest, depth)
        elif line.strip() == "}":
            depth -= 1
    assert deepest == 2  # stage(32) holds conv_bn(32, 2), conv_bn(32, 1) and se(32)
    assert "label=<se(32)>" in nested and "<B>s1</B>: stage(32)" in nested


def test_collapse_draws_each_top_level_call_as_one_node():
    net = load(TWO_HEADS)
    dot = gv.to_dot(net, collapse=True, params=True)
    assert "subgraph cluster_" not in dot
    blocks = re.findall(r"^  (b\d+) \[label=<(.*?)>, fillcolor", dot, re.M)
    assert [label.split("<BR/>")[0] for _, label in blocks] == [
        "<B>stem</B>: conv_bn(16)",
        "<B>s1</B>: stage(32)",
        "<B>s2</B>: stage(64)",
    ]
    assert "10 layers \u00b7 " in dot and " params" in dot
    # s1's output leaves once to s2 and once to the mask head, through a junction
    s1 = blocks[1][0]
    assert re.search(rf"{s1} -> j\d+ \[arrowhead=none, label=<32x32x32>", dot)
    assert "output 3" in dot and "output 1" in dot


def cluster_tooltips(dot: str) -> list[str]:
    """Each cluster's tooltip (its call's instance and signature), in the order drawn."""
    return re.findall(r"^\s*subgraph cluster_\d+ \{\n\s*graph \[.*tooltip=(\".*\")\]$", dot, re.M)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
@pytest.mark.parametrize("base", sorted(PROVENANCE_BASES))
def test_clusters_are_the_call_tree_whatever_the_provenance(base, data):
    """The diagram's clusters are the scopes of the call tree the code generators write
    functions from (one derivation of block structure): whatever provenance a JSON IR gives
    its nodes, every scope is one cluster, in order, and every layer is drawn once."""
    _, net = data.draw(scrambled(base))
    expected = [quoted(s.site.instance, s.site.signature()) for s in call_tree(net).scopes()]
    dot = gv.to_dot(net)
    assert cluster_tooltips(dot) == expected
    declared = re.findall(r"^\s*(n\d+) \[", dot, re.M)
    assert sorted(declared) == sorted(f"n{i}" for i in range(len(net.layers)))
    collapsed = gv.to_dot(net, collapse=True)
    top = [scope for scope in call_tree(net).items if not isinstance(scope, Layer)]
    assert len(re.findall(r"^  b\d+ \[label=", collapsed, re.M)) == len(top)


@needs_dot
def test_a_call_whose_nodes_are_apart_is_drawn_as_two_clusters():
    """A JSON IR may say that nodes far apart came from one call: each contiguous run is a
    cluster (as each is a function in generated code), and dot draws it."""
    net = cnndsl.loads("input 8x8x4\nblock b(f) { 1x1 conv f }\nb(4) -> relu -> b(4)")
    data = json.loads(net.to_json())
    data["layers"][3]["calls"] = data["layers"][1]["calls"]  # the second call is the first
    net = Network.model_validate_json(json.dumps(data))
    dot = gv.to_dot(net)
    assert cluster_tooltips(dot) == [quoted("b_1", "b(4)")] * 2
    assert svg_counts(svg_root(gv.render(net, "svg")))[2] == 2


def test_rankdir_and_bad_options():
    assert "rankdir=LR" in gv.to_dot(load(MINI), rankdir="LR")
    with pytest.raises(CnnDslError, match="rankdir must be one of"):
        gv.to_dot(load(MINI), rankdir="sideways")
    with pytest.raises(CnnDslError, match="cannot render 'jpg'"):
        gv.render(load(MINI), "jpg")


# ------------------------------------------------------------------------------ escaping

HOSTILE = (
    'ev"il\\N\\G\\" }{ <b>&amp; | a\nb ]; n0 -> n1 [color=red] // \'q\' <BR/> ]]> \x07 \u2603 \\'
)
SHOWN = re.sub(r"\s+", " ", HOSTILE).strip().replace("\x07", "\ufffd")


def hostile_pair() -> tuple[Network, Network]:
    net = load(MINI)
    bad = renamed(
        net,
        name=HOSTILE,
        layers={"conv_1": HOSTILE, "dense_1": HOSTILE + "2"},
        instances={"inc1": HOSTILE},
        extra_arg=HOSTILE,
    )
    clean = renamed(
        net,
        name="x",
        layers={"conv_1": "y", "dense_1": "y2"},
        instances={"inc1": "z"},
        extra_arg="w",
    )
    return bad, clean


def test_hostile_text_cannot_change_the_dot_structure():
    bad, clean = hostile_pair()
    for options in ({}, {"collapse": True, "params": True}):
        bad_dot, clean_dot = gv.to_dot(bad, **options), gv.to_dot(clean, **options)
        assert skeleton(bad_dot) == skeleton(clean_dot)
        assert bad_dot.count("\n") == clean_dot.count("\n")
        assert "\x07" not in bad_dot and "color=red" not in skeleton(bad_dot)


def test_hostile_text_is_escaped_in_labels_and_tooltips():
    bad, _ = hostile_pair()
    dot = gv.to_dot(bad)
    assert "ev&quot;il\\\\N\\\\G\\\\&quot; }{ &lt;b&gt;&amp;amp; | a b" in dot  # HTML-like
    assert 'tooltip="ev\\"il\\\\\\\\N' in dot  # quoted: \" and four backslashes for one


@needs_dot
def test_hostile_text_stays_inside_its_labels_when_drawn():
    bad, clean = hostile_pair()
    bad_svg, clean_svg = svg_root(gv.render(bad, "svg")), svg_root(gv.render(clean, "svg"))
    assert svg_counts(bad_svg) == svg_counts(clean_svg)
    texts = svg_texts(bad_svg)
    # the title, the layer's name and the call's name (bold, before its signature): each
    # one whole text element
    assert texts.count(SHOWN) == 3
    assert f"{SHOWN}2" in texts
    assert any(t.startswith(": inception(64, 96, 128, 32, ") and SHOWN in t for t in texts)
    tips = [el.get(XLINK_TITLE) for el in bad_svg.iter() if el.get(XLINK_TITLE)]
    assert any(tip.startswith(SHOWN + "\n7x7+2(S) conv 64 relu") for tip in tips)


# ------------------------------------------------------------------------------ the zoo


@needs_dot
@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_zoo_spec_draws_every_layer(path):
    net = load(path)
    root = svg_root(gv.render(net, "svg"))
    everything = svg_everything(root)
    missing = [
        layer.name
        for layer in net.layers
        if layer.notation() not in everything and layer.name not in everything
    ]
    assert not missing, f"not in the SVG: {missing[:5]}"
    calls = {layer.calls[0].instance: layer.calls[0] for layer in net.layers if layer.calls}
    if calls:
        collapsed = svg_root(gv.render(net, "svg", collapse=True))
        text = svg_everything(collapsed)
        for call in calls.values():
            assert call.signature() in text, call.signature()
        nodes, _, clusters = svg_counts(collapsed)
        assert clusters == 0 and nodes < len(net.layers) + len(net.outputs) + 1


@needs_dot
def test_png_and_pdf():
    net = load(MINI)
    assert gv.render(net, "png").startswith(b"\x89PNG\r\n\x1a\n")
    assert gv.render(net, "pdf").startswith(b"%PDF")


@needs_dot
def test_to_graphviz_and_notebook_display():
    net = load(MINI)
    source = net.to_graphviz(collapse=True)
    assert source.source == gv.to_dot(net, collapse=True)
    svg = net._repr_svg_()
    assert svg is not None and svg_root(svg.encode()).tag == f"{SVG}svg"


# ------------------------------------------------------------------------------ without Graphviz


def test_missing_dot_program_says_how_to_install(monkeypatch):
    monkeypatch.setattr(gv.shutil, "which", lambda name: None)
    net = load(MINI)
    with pytest.raises(CnnDslError) as e:
        gv.render(net, "svg")
    message = str(e.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "conda install" in message
    assert gv.to_dot(net).startswith("// Generated by cnndsl")  # DOT still works
    assert net._repr_svg_() is None  # a notebook falls back to the repr


@needs_dot
def test_dot_vanishing_after_the_check_says_how_to_install(monkeypatch):
    import graphviz

    def vanished(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz, "pipe", vanished)
    with pytest.raises(CnnDslError, match="apt-get install graphviz"):
        gv.render(load(MINI), "svg")


def test_missing_graphviz_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    with pytest.raises(CnnDslError, match="pip install graphviz"):
        gv.render(load(MINI), "svg")
    with pytest.raises(CnnDslError, match="pip install graphviz"):
        gv.to_graphviz(load(MINI))
    assert "digraph" in gv.to_dot(load(MINI))


# ------------------------------------------------------------------------------ CLI and docs


def cnndsl_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnndsl", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_dot_to_stdout():
    r = cnndsl_cli("compile", "specs/vgg16.cnn", "--target", "dot", "--collapse", "--rankdir", "LR")
    assert r.returncode == 0, r.stderr
    assert r.stdout == gv.to_dot(load(VGG16), collapse=True, rankdir="LR")


@needs_dot
def test_cli_svg_and_png(tmp_path):
    out = tmp_path / "x.svg"
    r = cnndsl_cli("compile", "specs/vgg16.cnn", "--target", "svg", "-o", str(out))
    assert r.returncode == 0, r.stderr
    texts = svg_texts(svg_root(out.read_bytes()))
    assert "3x3+1(S) conv 64 relu" in texts
    png = tmp_path / "x.png"
    r = cnndsl_cli(
        "compile", "specs/vgg16.cnn", "-t", "png", "--params", "--no-shapes", "-o", str(png)
    )
    assert r.returncode == 0, r.stderr
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_without_dot(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no dot there
    out = str(tmp_path / "x.svg")
    r = cnndsl_cli("compile", "specs/vgg16.cnn", "--target", "svg", "-o", out, env=env)
    assert r.returncode == 1
    assert "apt-get install graphviz" in r.stderr and "Traceback" not in r.stderr
    r = cnndsl_cli("compile", "specs/vgg16.cnn", "--target", "dot", env=env)
    assert r.returncode == 0 and r.stdout.startswith("// Generated by cnndsl")


@needs_dot
def test_docs_renderer(tmp_path):
    script = ROOT / "docs" / "render_diagrams.py"
    r = subprocess.run(
        [sys.executable, script, "specs/vgg16.cnn", MINI, "--out", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "mini_inception.svg",
        "mini_inception_collapsed.svg",
        "vgg16.svg",
        "vgg16_collapsed.svg",
    ]


LINEAR_CASES = {
    # a residual DAG of block calls: a cluster and a junction per call
    "residual": "input 8x8x4\nblock b() {{ add {{ 1x1 conv 4 relu | identity }} }}\nrepeat {q} {{ b() }}\n",
    # inception-like fans on the main path, one per call
    "fans": "input 8x8x4\nblock b() {{ concat {{ relu | relu | 1x1 conv 1 }} -> 1x1 conv 4 }}\nrepeat {q} {{ b() }}\n",
    # a concat as wide as the network is long, after a stack
    "wide": "input 8x8x4\nrepeat {n} {{ 1x1 conv 4 }}\nconcat {{ {branches} }}\n",
    # one tensor read by every call (one edge per collapsed call)
    "shared": "input a 8x8x4\ninput b 8x8x4\nblock c(t) {{ concat(t, t) -> 1x1 conv 4 }}\n"
    "a -> relu\nrepeat {q} {{ c(b) }}\n",
}


@pytest.mark.parametrize("collapse", [False, True], ids=["layers", "collapsed"])
@pytest.mark.parametrize("case", LINEAR_CASES)
def test_dot_is_linear_in_the_number_of_layers(case, collapse):
    """Issue 10 §3: the DOT of 8,000 layers takes about 4 times as long as 2,000 (at most 8,
    tests/scaling.py's rule; quadratic is 16): each cluster found its entry among every edge,
    each fan walked the whole graph back, each junction counted the others (a 400-way concat
    after 20,000 layers took 34 s)."""
    small, large = (
        cnndsl.loads(LINEAR_CASES[case].format(n=n, q=n // 4, branches=" | ".join(["relu"] * (n // 8))))
        for n in (2000, 8000)
    )
    assert len(large.layers) >= 4 * len(small.layers) - 12
    assert_linear(lambda: gv.to_dot(small, collapse=collapse), lambda: gv.to_dot(large, collapse=collapse), 4)
