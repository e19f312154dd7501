"""The Keras back end: live models and generated source, against the IR and independent references.

Every spec in specs/ and the small specs below (together they use every layer kind and padding
case) is checked for: parameters (total, trainable, non-trainable) equal to the IR's; every node's
output shape equal to its Keras layer's; a forward pass; generated source that, run in a fresh
process, builds the same model; deterministic, formatted source; golden files.  The custom layers
are checked against numpy (and PyTorch, where it computes the same thing), and the models of
keras.applications against ours.

Set CNNDSL_UPDATE_GOLDEN=1 to rewrite tests/golden/keras/*.py.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import runpy
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import cnndsl  # noqa: E402
from cnndsl.backends import keras as backend  # noqa: E402
from cnndsl.ir import LAYER_CLASSES  # noqa: E402
from conftest import LastBuilt, free_memory  # noqa: E402

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.cnn"))
GOLDEN = Path(__file__).resolve().parent / "golden" / "keras"

# ------------------------------------------------------------------ small specs
# Together with the zoo they cover every layer kind (test_small_specs_cover_every_kind).

SMALL = {
    "layers_zoo": """
        network layers_zoo
        input 16x16x8
        3x3+2(S) conv 16 relu6               # SAME, stride 2 on an even size: pads after only
        3x3(S) conv 16 groups=4 bias=off
        bn epsilon=0.00001 momentum=0.9
        relu
        3x3(S) conv 16 dilation=2 activation=leakyrelu
        3x3 conv 24 padding=((0, 1), (1, 2)) elu     # explicit asymmetric: ZeroPadding2D first
        5x5+1(2) conv 24 silu                        # explicit, equal to SAME: padding="same"
        3x3(S) dwconv 2 gelu
        3x3+2(S) sepconv 16 depth_multiplier=2 selu
        bn center=off scale=off
        lrn 2 alpha=0.0001 beta=0.75 bias=2
        depthmaxpool 2
        leakyrelu 0.2
        elu 0.5
        zeropad padding=((1, 0), (2, 1))
        upsample 2
        upsample size=(1, 2) bilinear
        selu
        tanh
        sigmoid
        silu
        gelu
        gelu_tanh
        linear
        relu6
        softmax
        globalmaxpool keepdims
        flatten
        dropout 0.25
        dense 10 nobias tanh
        dense 5 sigmoid
    """,
    "modern": """
        network modern
        input 32x32x3
        block convnext_block(c, rate) {
          add {
            7x7(S) dwconv 1 -> layernorm epsilon=1e-6 -> pointwise 4*c gelu -> pointwise c
            layerscale 0.5 -> stochasticdepth rate
          | identity
          }
        }
        block shuffle_unit(c) {
          concat {
            split 2 part=0
          | split 2 part=1 -> 1x1 conv c/2 relu -> 3x3(S) dwconv 1 -> bn -> 1x1 conv c/2 relu
          }
          shuffle 2
        }
        rescaling 1/127.5 offset=-1
        normalization                                  # statistics as weights
        rescaling scale=(0.5, 2, 4) offset=(0, 0.1, -0.1)
        normalization mean=(0.1, 0.2, 0.3) variance=(1, 2, 0.5)
        crop cropping=((1, 1), (0, 2))
        4x4+2 conv 16 -> layernorm epsilon=1e-6
        convnext_block(16, 0.1)
        convnext_block(16, 0.2)
        shuffle_unit(16)
        shuffle 4
        adaptiveavgpool 3x2
        reshape shape=(2, 3, -1)
        crop 0 -> layernorm scale=off -> gap
        layernorm center=off -> layerscale init=1 -> reshape 1x1x16 -> reshape 16
        normalization mean=0.5 variance=0.25 -> pointwise 10 -> dense 5 softmax
    """,
    "pooling": """
        network pooling
        input x 15x14x4
        a = x -> 3x3+2 maxpool padding=((1, 0), (0, 1))
        b = x -> 3x3+2(1) maxpool ceil
        c = x -> 2x2+2(V) maxpool ceil
        d = x -> 3x3+2(1) avgpool
        e = x -> 3x3+2(1) avgpool include_pad=off
        f = x -> 3x3+2(1) avgpool ceil
        g = x -> 3x3+2(1) avgpool ceil include_pad=off
        h = x -> 2x2+2(V) avgpool ceil
        i = x -> 3x3+1 avgpool padding=((1, 0), (1, 1)) include_pad=off
        j = x -> 3x3+2(S) avgpool include_pad=on
        k = x -> 3x3+1(1) avgpool include_pad=off
        l = x -> 3x3+1(1) maxpool
        m = x -> 3x3+2(S) maxpool
        n = x -> 2x2+2(S) avgpool
        o = x -> 2x2+2(1) maxpool ceil
        top = x -> globalmaxpool
        output a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, top
    """,
    "transposed": """
        network transposed
        input x 5x6x3
        a = x -> 3x3+2(S) convtranspose 4 output_padding=1
        b = x -> 3x3+2(V) convtranspose 4 relu
        c = x -> 4x4+2(1) convtranspose 4
        d = x -> 3x3+2(1) convtranspose 2 output_padding=1
        e = x -> 3x3+2 convtranspose 2 padding=((1, 2), (0, 1)) bias=off
        f = x -> 3x3 convtranspose 2 dilation=2
        g = x -> 2x2+2(S) convtranspose 3
        h = x -> 1x1+2(0) convtranspose 2 output_padding=1
        i = x -> 3x3+2(1) convtranspose 2 -> 3x3(S) conv 2
        output a, b, c, d, e, f, g, h, i
    """,
    "squeeze_excite": """
        network squeeze_excite
        input 8x8x16
        block se(c, r) {
          multiply { identity | gap -> dense c//r relu -> dense c sigmoid }
        }
        block se_map(c) {
          multiply { identity | gap keepdims -> 1x1 conv c sigmoid }
        }
        se(16, 4)
        se_map(16)
        x = 3x3(S) conv 32
        y = concat { identity | 1x1 conv 8 }
        se(40, 8)
        gap
    """,
    "mini_inception": """
        network mini_inception
        input 64x64x3
        block inception(c1, c3r, c3, c5r, c5, pp) {
          concat {
            1x1+1(S) conv c1 relu
          | 1x1+1(S) conv c3r relu -> 3x3+1(S) conv c3 relu
          | 1x1+1(S) conv c5r relu -> 5x5+1(S) conv c5 relu
          | 3x3+1(S) maxpool -> 1x1+1(S) conv pp relu
          }
        }
        7x7+2(S) conv 16 relu
        3x3+2(S) maxpool
        lrn 2 alpha=0.00002 beta=0.75
        inception_3a = inception(8, 12, 16, 2, 4, 4)
        inception_3b = inception(16, 16, 24, 4, 12, 8)
        3x3+2(S) maxpool
        inception_4a = inception(24, 12, 26, 2, 6, 8)
        gap
        dropout 0.4
        dense 10 softmax
    """,
    "mini_resnet": """
        network mini_resnet
        input 32x32x3
        block bottleneck(filters, stride=1, project=false) {
          add {
            1x1 conv filters stride=stride bias=off -> bn -> relu
            -> 3x3(S) conv filters bias=off -> bn -> relu
            -> 1x1 conv filters*4 bias=off -> bn
          | if project { shortcut = 1x1 conv filters*4 stride=stride bias=off -> bn }
            else { identity }
          }
          relu
        }
        block stage(filters, blocks, stride) {
          bottleneck(filters, stride, true)
          repeat blocks - 1 { bottleneck(filters) }
        }
        7x7+2(3) conv 16 bias=off
        bn
        relu
        3x3+2(1) maxpool
        conv2 = stage(8, 3, 1)
        conv3 = stage(16, 4, 2)
        conv4 = stage(32, 2, 2)
        gap
        dense 10 softmax
    """,
    "mini_unet": """
        network mini_unet
        input image 32x32x3
        block double(f) { 3x3(S) conv f relu -> 3x3(S) conv f relu }
        c1 = double(8)
        p1 = 2x2+2 maxpool
        c2 = double(16)
        p2 = 2x2+2 maxpool
        c3 = double(32)
        u2 = 2x2+2(S) convtranspose 16 -> concat(c2)
        d2 = double(16)
        u1 = 2x2+2(S) convtranspose 8 -> concat(c1)
        d1 = double(8)
        mask = 1x1 conv 1 sigmoid
    """,
    "two_heads": """
        network two_heads
        input a 16x16x3
        input b 16x16x3
        block res(f) { add { 3x3(S) conv f relu -> 3x3(S) conv f | identity } }
        x1 = a -> 3x3(S) conv 8 relu
        x2 = b -> 3x3(S) conv 8 relu -> repeat 2 { res(8) }
        m = x1 -> add(x2)
        h1 = m -> gap -> dense 4 softmax
        h2 = m -> flatten -> dense 1
        output h1, h2
    """,
    "name_clash": """
        network name_clash
        input 8x8x3
        block layers(keras, name, x, i, input) {   # names that Python and Keras code also uses
          3x3(S) conv keras relu -> 3x3(S) conv name -> 1x1 conv x -> dense_like(i, input)
        }
        block dense_like(layers, build_model) {
          1x1 conv layers -> 1x1 conv build_model
        }
        layers(4, 5, 6, 7, 8)
        layers(5, 6, 7, 8, 9)
        flatten
        dense 2
    """,
}

GOLDEN_SPECS = ["vgg16", "mini_resnet", "mini_inception"]

ALL = [path.stem for path in SPEC_FILES] + list(SMALL)
assert len(set(ALL)) == len(ALL), "a small spec has the name of a spec file"

# keras.applications models with a spec here: spec stem -> (constructor, keyword arguments)
APPLICATIONS = {
    "vgg16": ("VGG16", {}),
    "resnet50_keras": ("ResNet50", {}),
    "xception": ("Xception", {}),
    "mobilenet_v2_keras": ("MobileNetV2", {}),
}

_NETS: dict[str, cnndsl.Network] = {}


def load(name: str) -> cnndsl.Network:
    if name not in _NETS:
        if name in SMALL:
            _NETS[name] = cnndsl.loads(textwrap.dedent(SMALL[name]), f"{name}.cnn")
        else:
            _NETS[name] = cnndsl.load(ROOT / "specs" / f"{name}.cnn")
    return _NETS[name]


model = LastBuilt(lambda name: backend.build(load(name)))
"""The spec's Keras model, the last one built only (:class:`conftest.LastBuilt`)."""
drop_model = model.drop


@pytest.fixture(scope="module", params=ALL)
def spec(request) -> str:
    """A spec's name.  The fixture is module-scoped, so pytest runs the tests that take it
    spec by spec; after a spec's tests its model is dropped."""
    yield request.param
    drop_model()


def describe(m) -> list:
    """What must agree between the live model and the generated one (the driver runs it too):
    every layer's name, class, configuration, output shape and parameters."""
    rows = []
    for layer in m.layers:
        config = {k: v for k, v in layer.get_config().items() if k not in ("name", "dtype")}
        rows.append(
            [
                layer.name,
                type(layer).__name__,
                json.loads(json.dumps(config, sort_keys=True, default=repr)),
                list(layer.output.shape[1:]),
                layer.count_params(),
                sum(int(np.prod(w.shape)) for w in layer.trainable_weights),
            ]
        )
    outputs = m.outputs
    return [rows, [list(t.shape[1:]) for t in outputs], [t.name for t in m.inputs]]


# ------------------------------------------------------------------ the zoo and the small specs


def test_parameters_equal_the_ir(spec):
    net, m = load(spec), model(spec)
    a = net.analysis
    trainable = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in m.non_trainable_weights)
    assert (m.count_params(), trainable, frozen) == (
        a.total_params,
        a.trainable_params,
        a.non_trainable_params,
    )


def test_every_node_has_its_shape(spec):
    net, m = load(spec), model(spec)
    names = backend.layer_names(net)
    for layer in net.layers:
        keras_names = names[layer.name]
        assert layer.name in keras_names  # the node's own layer keeps its name
        last = m.get_layer(keras_names[-1])
        assert tuple(last.output.shape[1:]) == net.shape(layer.name), layer.name
        for param_layer in keras_names:  # helpers hold no weights; the node's layer holds them
            if param_layer != layer.name:
                assert m.get_layer(param_layer).count_params() == 0
        info = net.analysis[layer.name]
        assert m.get_layer(layer.name).count_params() == info.params, layer.name
    assert sorted(layer.name for layer in m.layers) == sorted(
        n for ns in names.values() for n in ns
    )


def test_forward_pass(spec):
    net, m = load(spec), model(spec)
    rng = np.random.default_rng(0)
    batch = [rng.standard_normal((2, *layer.shape)).astype("float32") for layer in net.inputs]
    out = m(batch[0] if len(batch) == 1 else batch, training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    assert [tuple(t.shape) for t in out] == [(2, *net.shape(o)) for o in net.outputs]
    assert all(np.isfinite(np.asarray(t)).all() for t in out)


# ------------------------------------------------------------------ generated source

# Builds each model in a StatelessScope that leaves the weights uninitialized: what describe()
# compares (configurations, shapes, parameter counts) is all there, without Keras drawing
# VGG-16's random weights (1.2 GB at its peak, while the test process holds its own models).
_DRIVER = f"""
import importlib.util, json, sys
import keras
import numpy as np

{inspect.getsource(describe)}

result = {{}}
for name, path in json.loads(sys.argv[1]).items():
    spec = importlib.util.spec_from_file_location("generated_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with keras.StatelessScope(initialize_variables=False):
        result[name] = describe(module.build_model())
    keras.backend.clear_session()  # (forgets the uninitialized weights)
assert not any(m.split(".")[0] == "cnndsl" for m in sys.modules), "generated code imports cnndsl"
print("RESULT" + json.dumps(result))
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    """Every spec's generated module, run in one fresh process (it imports keras, not cnndsl)."""
    folder = tmp_path_factory.mktemp("generated")
    paths = {}
    for name in ALL:
        path = folder / f"{name}.py"
        path.write_text(backend.to_source(load(name)), encoding="utf-8")
        paths[name] = str(path)
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    drop_model()  # the child takes 1 GB beside this process: it holds no model meanwhile
    return _run_result(_DRIVER, [json.dumps(paths)], env, cwd=folder, timeout=600)


def _run_result(code: str, args: list[str], env: dict, cwd=ROOT, timeout: int = 300):
    """Run ``python -c code args`` in a fresh process; what it printed after ``RESULT``, as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_generated_source_builds_the_same_model(spec, generated):
    assert generated[spec] == json.loads(json.dumps(describe(model(spec))))


@pytest.mark.parametrize("name", ALL)
def test_source_is_deterministic_and_formatted(name):
    net = load(name)
    text = backend.to_source(net)
    assert text == backend.to_source(net)
    assert text.endswith("\n") and not text.endswith("\n\n")
    compile(text, f"{name}.py", "exec")
    for number, line in enumerate(text.splitlines(), 1):
        assert len(line) <= 100, f"line {number} is {len(line)} characters: {line}"
        assert line == line.rstrip(), f"trailing space on line {number}"
        assert "\t" not in line
    assert "cnndsl" not in "".join(
        line for line in text.splitlines() if line.startswith(("import", "from"))
    )


def test_source_is_deterministic_across_processes():
    """No set or hash order leaks into the text: another hash seed gives the same bytes."""
    names = ["mini_resnet", "two_heads", "squeeze_excite"]
    code = textwrap.dedent("""
        import json, sys, textwrap
        import cnndsl
        from cnndsl.backends import keras as backend
        specs = json.loads(sys.argv[1])
        texts = {n: cnndsl.loads(textwrap.dedent(t), n + ".cnn") for n, t in specs.items()}
        print("RESULT" + json.dumps({n: backend.to_source(net) for n, net in texts.items()}))
        """)
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TF_CPP_MIN_LOG_LEVEL": "3"}
    other = _run_result(code, [json.dumps({n: SMALL[n] for n in names})], env)
    for name in names:
        assert other[name] == backend.to_source(load(name)), name


@pytest.mark.parametrize("name", GOLDEN_SPECS)
def test_golden_source(name):
    text = backend.to_source(load(name))
    path = GOLDEN / f"{name}.py"
    if os.environ.get("CNNDSL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with CNNDSL_UPDATE_GOLDEN=1"
    assert text == path.read_text(
        encoding="utf-8"
    ), f"{path} differs (CNNDSL_UPDATE_GOLDEN=1 rewrites it)"


def test_blocks_become_functions():
    """One function per block structure, parameters named after the block's, loops for repeats."""
    vgg = backend.to_source(load("vgg16")) if "vgg16" in ALL else ""
    if vgg:
        assert "def stage(x, filters, convs, name):" in vgg
        assert "for i in range(1, convs + 1):" in vgg
        assert vgg.count("stage(") == 6  # the definition and five calls
    resnet = backend.to_source(load("mini_resnet"))
    assert "def bottleneck(x, filters, name):" in resnet
    assert "def bottleneck_project(x, filters, stride, name):" in resnet  # project=true calls
    assert "filters * 4" in resnet
    assert "def stage(x, filters, blocks, stride, name):" in resnet
    assert "for i in range(2, blocks + 1):" in resnet  # repeat blocks - 1, from bottleneck_2 on
    line = textwrap.dedent(SMALL["mini_resnet"]).splitlines().index("conv3 = stage(16, 4, 2)") + 1
    assert f'x = stage(x, 16, 4, 2, name="conv3")  # mini_resnet.cnn:{line}' in resnet
    inception = backend.to_source(load("mini_inception"))
    assert "def inception(x, c1, c3r, c3, c5r, c5, pp, name):" in inception
    assert 'x = inception(x, 8, 12, 16, 2, 4, 4, name="inception_3a")' in inception
    unet = backend.to_source(load("mini_unet"))
    assert 'c1 = double(image, 8, name="c1")' in unet  # a skip connection keeps its name
    assert 'layers.Concatenate(name="u1")([x, c1])' in unet


@pytest.mark.parametrize("name", ["mini_inception", "transposed", "two_heads"])
def test_every_layer_statement_says_where_it_comes_from(name):
    """Each statement that makes a layer or calls a block ends with `# <spec file>:<line>`."""
    tokens = list(tokenize.generate_tokens(io.StringIO(backend.to_source(load(name))).readline))
    statement: list = []
    checked = 0
    for token in tokens:
        statement.append(token)
        if token.type not in (tokenize.NEWLINE, tokenize.ENDMARKER):
            continue
        words = [t.string for t in statement]
        if "name" in words and "=" in words and words[0] != "def" and "keras" != words[-1]:
            comments = [t.string for t in statement if t.type == tokenize.COMMENT]
            if "Model" not in words:
                assert comments and comments[-1].startswith(f"# {name}.cnn:"), " ".join(words)
                checked += 1
        statement = []
    assert checked >= len({layer.position.line for layer in load(name).layers})


# ------------------------------------------------------------------ source without Keras

_NO_FRAMEWORK = """
import json, sys, textwrap
import cnndsl
from cnndsl.backends import keras as backend
from cnndsl.cli import main
specs, spec_file, out_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
nets = {n: cnndsl.loads(textwrap.dedent(t), n + ".cnn") for n, t in specs.items()}
texts = {n: backend.to_source(net) for n, net in nets.items()}
code = main(["compile", spec_file, "--target", "keras", "-o", out_file])
loaded = [m for m in ("tensorflow", "keras") if m in sys.modules]
print("RESULT" + json.dumps({"texts": texts, "code": code, "loaded": loaded}))
"""


def test_source_needs_neither_keras_nor_tensorflow(tmp_path):
    """to_source (and `cnndsl compile --target keras`) of specs that use every custom layer, in
    a fresh process, imports neither TensorFlow nor Keras, and writes the same text as here."""
    names = ["layers_zoo", "modern", "pooling"]
    spec_file, out_file = tmp_path / "pooling.cnn", tmp_path / "pooling.py"
    spec_file.write_text(textwrap.dedent(SMALL["pooling"]), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [json.dumps({n: SMALL[n] for n in names}), str(spec_file), str(out_file)]
    result = _run_result(_NO_FRAMEWORK, args, env)
    assert result["loaded"] == [], f"to_source imported {result['loaded']}"
    assert result["code"] == 0
    for name in names:
        assert result["texts"][name] == backend.to_source(load(name)), name
    assert out_file.read_text(encoding="utf-8") == backend.to_source(cnndsl.load(spec_file))
    text = "".join(result["texts"].values())
    for name, obj in backend.CUSTOM_OBJECTS.items():
        kind = "class" if inspect.isclass(obj) else "def"
        assert f"\n{kind} {name}(" in text, f"no spec here uses {name}"


def test_copied_custom_layers_are_the_live_ones():
    """What generated source defines (read from layers.py as text) is the code build() runs."""
    from cnndsl.backends.codegen import runtime_definitions

    definitions = runtime_definitions("cnndsl.backends.keras", "layers.py")
    assert set(backend.CUSTOM_OBJECTS) <= set(definitions)
    for name, obj in backend.CUSTOM_OBJECTS.items():
        assert definitions[name] == inspect.getsource(obj).rstrip("\n"), name
        assert obj.__module__ == "cnndsl.backends.keras.layers"
    assert issubclass(backend.NegInfPadding2D, keras.layers.Layer)  # `import keras`: Keras itself


@pytest.mark.parametrize("escape", ["\\x", "\\N", "\\u", "\\", '"""', '\\"'])
def test_long_file_names_cannot_break_docstrings(escape):
    """A word longer than a line is broken across lines, never inside an escape (a backslash
    left at the end of a line would escape the next line's first character)."""
    spec = "network n\ninput 8x8x3\nblock b(f) {\n  3x3 conv f\n}\nb(4)\nb(4)\n"
    for n in range(80, 200):
        for tail in range(3):
            text = backend.to_source(cnndsl.loads(spec, "a" * n + escape + "b" * tail + ".cnn"))
            compile(text, "generated.py", "exec")
            assert all(line == line.rstrip() for line in text.splitlines())


# ------------------------------------------------------------------ coverage and errors


def test_every_layer_class_is_handled_or_unsupported():
    for cls in LAYER_CLASSES:
        assert (cls in backend.HANDLERS) != (cls in backend.UNSUPPORTED), cls.__name__


def test_small_specs_cover_every_kind():
    used = {layer.kind for name in SMALL for layer in load(name).layers}
    handled = [cls for cls in LAYER_CLASSES if cls not in backend.UNSUPPORTED]
    assert used >= {cls.model_fields["kind"].default for cls in handled}


AUX_HEADS = """
network aux_heads
input 16x16x3
block head(n) { gap -> dense n }
x = 3x3(S) conv 8 bias=off -> bn -> relu
aux1 = head(3)
x -> 3x3(S) conv 8 relu
aux2 = 1x1 conv 2 -> flatten -> dense 4
x -> 3x3+2(S) conv 8 relu -> gap
logits = dense 5
output logits, aux2 (training), aux1 (training)
"""


def test_training_outputs_are_an_option_of_build_model(tmp_path):
    """A functional model cannot change its outputs with the mode: build_model() is the
    inference model, without the layers only training outputs need; build_model(
    training_outputs=True) builds them too and returns every output in the spec's order;
    net.to_keras() takes the same option, and the generated file is the same function."""
    net = cnndsl.loads(AUX_HEADS, "aux_heads.cnn")
    a = net.analysis
    inference = net.to_keras()
    names = {layer.name for layer in inference.layers}
    assert [t.shape[1:] for t in inference.outputs] == [(5,)]
    assert not names & net.training_only()
    assert inference.count_params() == a.inference.total_params < a.total_params
    full = net.to_keras(training_outputs=True)
    assert [tuple(t.shape[1:]) for t in full.outputs] == [(5,), (4,), (3,)]
    assert full.count_params() == a.total_params
    assert {layer.name for layer in full.layers} >= net.training_only()
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    # the inference model of a trained one: the same layers, its inference output
    shared = keras.Model(full.inputs, full.outputs[0])
    np.testing.assert_array_equal(np.asarray(shared(x)), np.asarray(full(x)[0]))
    path = tmp_path / "aux_heads.py"
    path.write_text(backend.to_source(net))
    namespace = runpy.run_path(str(path))
    again = namespace["build_model"](training_outputs=True)
    again.set_weights(full.get_weights())
    for got, want in zip(again(x), full(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert namespace["build_model"]().count_params() == a.inference.total_params


def test_a_training_output_on_the_main_path_is_still_left_out_of_inference(tmp_path):
    """A training output whose layers inference needs anyway (no layer of its own): the
    inference model still returns the inference outputs only, as PyTorch's eval mode does
    (the fuzzer's generated-module runs found build_model() returning every output)."""
    text = "input 8x8x3\nmid = 3x3(S) conv 4\nlogits = gap -> dense 5\noutput logits, mid (training)\n"
    net = cnndsl.loads(text, "on_path.cnn")
    assert not net.training_only()
    assert [tuple(t.shape[1:]) for t in net.to_keras().outputs] == [(5,)]
    full = net.to_keras(training_outputs=True)
    assert [tuple(t.shape[1:]) for t in full.outputs] == [(5,), (8, 8, 4)]
    path = tmp_path / "on_path.py"
    path.write_text(backend.to_source(net))
    build_model = runpy.run_path(str(path))["build_model"]
    assert len(build_model().outputs) == 1 and len(build_model(training_outputs=True).outputs) == 2


def test_unreachable_layer_is_an_error():
    """The elaborator refuses unused layers; a network built otherwise may still have them."""
    text = "input 8x8x3\na = 3x3(S) conv 4\nb = a -> 3x3(S) conv 2\nc = a -> flatten -> dense 2\n"
    text += "output b, c\n"
    full = cnndsl.loads(text, "dead.cnn")
    net = cnndsl.Network(name=full.name, layers=full.layers, outputs=["c"])
    with pytest.raises(cnndsl.CnnDslError) as err:
        backend.build(net)
    assert "Keras cannot express layer 'b'" in str(err.value)
    assert "reaches no output" in str(err.value)
    assert err.value.location.line == 3


def test_output_padding_keras_refuses_is_an_error():
    net = cnndsl.loads("input 6x6x2\n3x3 convtranspose 2 dilation=2 output_padding=1\n", "op.cnn")
    with pytest.raises(cnndsl.CnnDslError, match="output_padding smaller than the stride"):
        backend.to_source(net)


# ------------------------------------------------------------------ numerics of the custom layers


def torch_pool(x, kind, k, s, pads, ceil, include_pad):
    """PyTorch's pooling semantics in numpy, for asymmetric padding too: windows start at
    o*s - before; with ceil_mode a last window starting in the input or the top/left padding is
    kept; averages divide by the window's cells inside the input (or the padded input)."""
    n, height, width, c = x.shape

    def size(length, k, s, before, after):
        span = length + before + after - k
        if not ceil:
            return span // s + 1
        out = -(-span // s) + 1
        return out - 1 if (out - 1) * s >= length + before else out

    oh, ow = size(height, k[0], s[0], *pads[0]), size(width, k[1], s[1], *pads[1])
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - pads[0][0], j * s[1] - pads[1][0]
            h1, w1 = min(h0 + k[0], height + pads[0][1]), min(w0 + k[1], width + pads[1][1])
            padded_cells = (h1 - h0) * (w1 - w0)
            hs, he, ws, we = max(h0, 0), min(h1, height), max(w0, 0), min(w1, width)
            window = x[:, hs:he, ws:we, :]
            if kind == "max":
                y[:, i, j] = window.max(axis=(1, 2))
            else:
                y[:, i, j] = window.sum(axis=(1, 2)) / (
                    padded_cells if include_pad else (he - hs) * (we - ws)
                )
    return y


def tf_same_pool(x, kind, k, s):
    """TensorFlow's SAME pooling in numpy: pads never count."""
    n, height, width, c = x.shape
    pads = []
    for length, kk, ss in zip((height, width), k, s):
        out = -(-length // ss)
        total = max((out - 1) * ss + kk - length, 0)
        pads.append((total // 2, total - total // 2))
    return torch_pool(x, kind, k, s, pads, False, False)


POOL_CASES = {  # node of the `pooling` spec -> its semantics
    "a": ("max", (3, 3), (2, 2), ((1, 0), (0, 1)), False, True),
    "b": ("max", (3, 3), (2, 2), ((1, 1), (1, 1)), True, True),
    "c": ("max", (2, 2), (2, 2), ((0, 0), (0, 0)), True, True),
    "d": ("avg", (3, 3), (2, 2), ((1, 1), (1, 1)), False, True),
    "e": ("avg", (3, 3), (2, 2), ((1, 1), (1, 1)), False, False),
    "f": ("avg", (3, 3), (2, 2), ((1, 1), (1, 1)), True, True),
    "g": ("avg", (3, 3), (2, 2), ((1, 1), (1, 1)), True, False),
    "h": ("avg", (2, 2), (2, 2), ((0, 0), (0, 0)), True, False),
    "i": ("avg", (3, 3), (1, 1), ((1, 0), (1, 1)), False, False),
    "k": ("avg", (3, 3), (1, 1), ((1, 1), (1, 1)), False, False),
    "l": ("max", (3, 3), (1, 1), ((1, 1), (1, 1)), False, True),
    "o": ("max", (2, 2), (2, 2), ((1, 1), (1, 1)), True, True),
}


def _outputs_by_node(name: str, x) -> dict:
    net, m = load(name), model(name)
    out = m(x, training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return {node: np.asarray(t) for node, t in zip(net.outputs, out)}


def test_pooling_matches_pytorch_semantics():
    x = np.random.default_rng(1).standard_normal((2, 15, 14, 4)).astype("float32")
    got = _outputs_by_node("pooling", x)
    for node, (kind, k, s, pads, ceil, include) in POOL_CASES.items():
        expected = torch_pool(x.astype("float64"), kind, k, s, pads, ceil, include)
        np.testing.assert_allclose(got[node], expected, rtol=1e-5, atol=1e-5, err_msg=node)
    # SAME pooling keeps TensorFlow's semantics; include_pad=on counts the SAME pads
    np.testing.assert_allclose(
        got["m"], tf_same_pool(x, "max", (3, 3), (2, 2)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        got["n"], tf_same_pool(x, "avg", (2, 2), (2, 2)), rtol=1e-5, atol=1e-5
    )
    pads_j = ((1, 1), (0, 1))  # SAME for 15x14, 3x3 window, stride 2
    expected_j = torch_pool(x.astype("float64"), "avg", (3, 3), (2, 2), pads_j, False, True)
    np.testing.assert_allclose(got["j"], expected_j, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["top"], x.max(axis=(1, 2)), rtol=1e-6)


def test_the_pooling_reference_is_pytorch():
    """The numpy reference above agrees with PyTorch itself where PyTorch can compute it."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 15, 14, 4)).astype("float32")
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    for node, (kind, k, s, pads, ceil, include) in POOL_CASES.items():
        if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
            continue
        padding = (pads[0][0], pads[1][0])
        if kind == "max":
            y = torch.nn.functional.max_pool2d(xt, k, s, padding, ceil_mode=ceil)
        else:
            y = torch.nn.functional.avg_pool2d(
                xt, k, s, padding, ceil_mode=ceil, count_include_pad=include
            )
        expected = torch_pool(x.astype("float64"), kind, k, s, pads, ceil, include)
        np.testing.assert_allclose(
            y.permute(0, 2, 3, 1).numpy(), expected, rtol=1e-5, atol=1e-5, err_msg=node
        )


def test_local_response_normalization():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 7)).astype("float32")
    radius, bias, alpha, beta = 2, 2.0, 0.01, 0.75
    layer = backend.LocalResponseNormalization(radius, bias, alpha, beta)
    got = np.asarray(layer(x))
    expected = np.empty_like(x, dtype="float64")
    for c in range(7):
        lo, hi = max(0, c - radius), min(7, c + radius + 1)
        total = (x[..., lo:hi].astype("float64") ** 2).sum(axis=-1)
        expected[..., c] = x[..., c] / (bias + alpha * total) ** beta
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    tf = pytest.importorskip("tensorflow")
    reference = tf.nn.local_response_normalization(x, radius, bias, alpha, beta).numpy()
    np.testing.assert_allclose(got, reference, rtol=1e-5)


def test_depth_max_pooling():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 12)).astype("float32")
    got = np.asarray(backend.DepthMaxPooling2D(3)(x))
    np.testing.assert_array_equal(got, x.reshape(2, 3, 4, 4, 3).max(axis=-1))


def test_channel_split_and_shuffle_follow_the_ir():
    """ChannelSplit keeps the IR's channels; ChannelShuffle puts input channel
    ChannelShuffle.permutation()[j] at output channel j."""
    from cnndsl.ir import ChannelShuffle, ChannelSplit

    x = np.random.default_rng(8).standard_normal((2, 3, 4, 12)).astype("float32")
    for parts, part in ((2, 0), (2, 1), (4, 3), (3, 1)):
        got = np.asarray(backend.ChannelSplit(parts, part)(x))
        kept = list(ChannelSplit(name="s", parts=parts, part=part).channels([(3, 4, 12)]))
        np.testing.assert_array_equal(got, x[..., kept])
    for groups in (2, 3, 4):
        got = np.asarray(backend.ChannelShuffle(groups)(x))
        np.testing.assert_array_equal(got, x[..., ChannelShuffle(name="s", groups=groups).permutation(12)])


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth(mode):
    """The identity at inference; in training each example (row) or the whole batch is zeroed
    with probability rate, the rest divided by 1 - rate."""
    layer = backend.StochasticDepth(0.5, mode=mode, seed=3)
    x = np.random.default_rng(9).uniform(1, 2, (64, 3, 3, 2)).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    dropped = 0
    for _ in range(8):
        y = np.asarray(layer(x, training=True)) / x
        kept = np.isclose(y, 2.0).all(axis=(1, 2, 3))
        zero = (y == 0).all(axis=(1, 2, 3))
        assert (kept | zero).all()
        if mode == "batch":
            assert kept.all() or zero.all()
        dropped += int(zero.sum())
    total = 8 * 64
    assert 0.3 * total < dropped < 0.7 * total if mode == "row" else 0 < dropped < total


def test_neg_inf_padding():
    x = -np.abs(np.random.default_rng(5).standard_normal((1, 2, 3, 1))).astype("float32")
    got = np.asarray(backend.NegInfPadding2D(((1, 0), (0, 2)))(x))
    assert got.shape == (1, 3, 5, 1)
    assert np.isneginf(got[0, 0]).all() and np.isneginf(got[0, :, 3:]).all()
    np.testing.assert_array_equal(got[:, 1:, :3], x)


def test_transposed_convolution_matches_its_definition():
    """Output o gets input i through kernel tap t where o = i*s + t*d - before (PyTorch's
    explicit padding), plus the bias on every output, extra output_padding rows included."""
    net, m = load("transposed"), model("transposed")
    x = np.random.default_rng(6).standard_normal((2, 5, 6, 3)).astype("float32")
    got = _outputs_by_node("transposed", x)
    for node in "abcdefgh":
        layer, info = net[node], net.analysis[node]
        weights = m.get_layer(node).get_weights()
        kernel, bias = weights[0], (weights[1] if len(weights) > 1 else 0.0)  # (kh, kw, out, in)
        (top, _), (left, _) = layer.explicit_padding(list(info.input_shapes))
        oh, ow, _ = info.output_shape
        y = np.zeros((2, oh, ow, layer.filters)) + bias
        for i in range(5):
            for j in range(6):
                for a in range(layer.kernel[0]):
                    for b in range(layer.kernel[1]):
                        r = i * layer.stride[0] + a * layer.dilation[0] - top
                        c = j * layer.stride[1] + b * layer.dilation[1] - left
                        if 0 <= r < oh and 0 <= c < ow:
                            y[:, r, c] += x[:, i, j] @ kernel[a, b].T
        if layer.activation == "relu":
            y = np.maximum(y, 0)
        np.testing.assert_allclose(got[node], y, rtol=1e-4, atol=1e-4, err_msg=node)


@pytest.mark.parametrize("name", ["layers_zoo", "pooling", "modern"])
def test_custom_layers_are_serializable(name, tmp_path):
    """Saved and loaded back (the custom layers and activation are registered), same outputs."""
    net, m = load(name), model(name)
    m.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")
    rng = np.random.default_rng(7)
    batch = [rng.standard_normal((2, *layer.shape)).astype("float32") for layer in net.inputs]
    batch = batch[0] if len(batch) == 1 else batch
    ours, theirs = m(batch, training=False), again(batch, training=False)
    ours = ours if isinstance(ours, (list, tuple)) else [ours]
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_leaky_relu_activation_slope():
    assert np.allclose(
        np.asarray(backend.leaky_relu(np.array([-1.0, 2.0], "float32"))), [-0.3, 2.0]
    )


# ------------------------------------------------------------------ keras.applications


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_same_parameters_as_keras_applications(name, refs):
    if not (ROOT / "specs" / f"{name}.cnn").exists():
        pytest.skip(f"no specs/{name}.cnn yet")
    constructor, kwargs = APPLICATIONS[name]

    def numbers(m) -> tuple:
        count = lambda ws: sum(int(np.prod(w.shape)) for w in ws)  # noqa: E731
        shape = tuple(m.output.shape[1:])
        return m.count_params(), count(m.trainable_weights), count(m.non_trainable_weights), shape

    # Counts and shapes need no weights: built in a StatelessScope that leaves them
    # uninitialized, neither model takes memory for them (VGG-16: 553 MB, and as much again
    # while Keras draws them).
    drop_model()
    with keras.StatelessScope(initialize_variables=False):
        ours = numbers(backend.build(load(name)))
        theirs = numbers(getattr(keras.applications, constructor)(weights=None, **kwargs))
    free_memory()
    assert ours == theirs
    assert ours[0] == refs["keras_applications"][constructor]["total_params"]


# ------------------------------------------------------------------ every kind's examples

from cnndsl.ir import ACTIVATIONS  # noqa: E402
from cnndsl.ir.examples import example_lines, example_spec  # noqa: E402

EXAMPLE_CASES = example_lines()


@pytest.mark.parametrize(
    "kind,shape,line", EXAMPLE_CASES, ids=[f"{k}:{l}" for k, _, l in EXAMPLE_CASES]
)
def test_every_example_builds_with_the_irs_shapes_or_is_refused(kind, shape, line):
    """Each example line of the registry builds a model whose every node has the IR's shape
    and parameters and computes finite values, or a kind declared unsupported is refused with
    a located error naming the layer and Keras."""
    net = cnndsl.loads(example_spec(shape, line), "example.cnn")
    refused = [layer for layer in net.layers if type(layer) in backend.UNSUPPORTED]
    if refused:
        with pytest.raises(cnndsl.CnnDslError) as error:
            backend.build(net)
        assert f"Keras cannot express layer '{refused[0].name}'" in str(error.value)
        assert error.value.location.line == refused[0].position.line
        return
    m = backend.build(net)
    names = backend.layer_names(net)
    for layer in net.layers:
        assert tuple(m.get_layer(names[layer.name][-1]).output.shape[1:]) == net.shape(layer.name)
    assert m.count_params() == net.analysis.total_params
    trainable = sum(int(np.prod(v.shape)) for v in m.trainable_weights)
    assert trainable == net.analysis.trainable_params
    x = np.random.default_rng(0).standard_normal((2, *net.inputs[0].shape)).astype("float32")
    assert np.isfinite(np.asarray(m(x, training=False))).all()


def test_every_activation_resolves_in_keras():
    """The back end's table maps every IR activation to a function of keras.activations (or
    one of layers.py, registered with Keras)."""
    for name in ACTIVATIONS:
        value = backend.KerasGenerator.ACTIVATIONS[name]
        if value is None:
            assert name == "linear"
        elif isinstance(value, str):
            assert callable(keras.activations.get(value)), name
        else:
            assert value.name in backend.CUSTOM_OBJECTS, name
            registered = keras.saving.get_registered_object(f"cnndsl>{value.name}")
            assert registered.__name__ == value.name, name  # (the last module run registers)


MAP_EXAMPLES = [case for case in EXAMPLE_CASES if case[1].count("x") == 2 and case[0] != "input"]


@pytest.mark.parametrize(
    "kind,shape,line", MAP_EXAMPLES, ids=[f"{k}:{l}" for k, _, l in MAP_EXAMPLES]
)
def test_every_example_layer_computes_the_spec_at_other_input_sizes(kind, shape, line):
    """The model takes the spec's input size (Keras refuses others, naming it), but its layers
    compute the spec for whatever size they are given: with its input line changed to another
    size, the generated module computes what the module of the spec at that size computes."""
    from cnndsl.backends.codegen import execute

    net = cnndsl.loads(example_spec(shape, line), "example.cnn")
    if any(type(layer) in backend.UNSUPPORTED for layer in net.layers):
        pytest.skip("a kind Keras does not express")
    h, w, c = map(int, shape.split("x"))
    source = backend.to_source(net)
    compared = 0
    for dh, dw in ((1, 1), (-1, 2), (3, -1)):
        resized = source.replace(f"shape=({h}, {w}, {c})", f"shape=({h + dh}, {w + dw}, {c})")
        try:
            other = cnndsl.loads(example_spec(f"{h + dh}x{w + dw}x{c}", line), "example.cnn")
            reference = backend.build(other)
        except cnndsl.CnnDslError:  # the spec does not apply at that size: nor does the model
            if min(h + dh, w + dw) > 0:
                with pytest.raises(ValueError):
                    execute(resized, "resized")["build_model"]()
            continue
        model = execute(resized, "resized")["build_model"]()
        for layer in reference.layers:
            layer.set_weights(model.get_layer(layer.name).get_weights())
        x = np.random.default_rng(1).standard_normal((2, h + dh, w + dw, c)).astype("float32")
        np.testing.assert_allclose(
            np.asarray(model(x, training=False)), np.asarray(reference(x, training=False)), atol=1e-6
        )
        compared += 1
    assert compared or kind == "reshape", "no other size applies"  # `reshape 16`: one size


# ------------------------------------------------------------------ every value the IR accepts

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from ir_strategies import networks  # noqa: E402

HANDLED = [cls for cls in LAYER_CLASSES if cls in backend.HANDLERS and cls.__name__ != "Input"]


@pytest.mark.parametrize("cls", HANDLED, ids=lambda cls: cls.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_value_the_ir_accepts_builds_or_is_refused(cls, data):
    """Field values drawn within the IR's constraints: the model builds and runs, or the back
    end refuses the node with a located error naming it and Keras."""
    net = data.draw(networks(cls))
    try:
        m = backend.build(net)
    except cnndsl.CnnDslError as error:
        assert "Keras cannot express layer 'node'" in str(error), str(error)
        assert error.location.line == 2
        return
    x = np.zeros((2, *net.inputs[0].shape), "float32")
    assert tuple(np.asarray(m(x, training=False)).shape[1:]) == net.shape("node")


def test_values_keras_cannot_build_are_located_errors(tmp_path):
    """leakyrelu -0.5 passes check (PyTorch builds it); Keras's LeakyReLU refuses a negative
    slope, so compiling for Keras says so, at the layer, before Keras is ever called."""
    from cnndsl.cli import main

    spec = tmp_path / "negative.cnn"
    spec.write_text("input 8x8x3\nleakyrelu -0.5\n", encoding="utf-8")
    net = cnndsl.load(spec)
    assert "F.leaky_relu(x, -0.5)" in net.to_source("torch")
    with pytest.raises(cnndsl.CnnDslError) as error:
        net.to_source("keras")
    assert str(error.value) == (
        f"{spec}:2:1: error: Keras cannot express layer 'leakyrelu_1' (leakyrelu -0.5): Keras's"
        " LeakyReLU takes a slope of 0 or more, not -0.5\n"
        "    2 | leakyrelu -0.5\n"
        "      | ^^^^^^^^^^^^^^"
    )
    assert main(["compile", str(spec), "--target", "keras"]) == 1


@pytest.mark.parametrize("base", ["blocks", "dag"])
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_provenance_computes_the_same_function(base, data):
    """Issue 10 §5: whatever block calls a JSON IR records on its nodes, the model builds and,
    with the same weights, computes what the network's own model does."""
    from ir_strategies import scrambled

    net, other = data.draw(scrambled(base))
    ours, theirs = backend.build(net), backend.build(other)
    for layer in ours.layers:
        theirs.get_layer(layer.name).set_weights(layer.get_weights())
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, *layer.shape)).astype("float32") for layer in net.inputs]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    np.testing.assert_array_equal(
        np.asarray(theirs(inputs, training=False)), np.asarray(ours(inputs, training=False))
    )
