"""Nothing from a spec can inject code into generated Python or DOT, and imports run nothing.

Names in specs must be identifiers (the IR refuses anything else, from a spec or from JSON);
strings, file names and call arguments that reach generated code only appear escaped inside
comments, docstrings and labels.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re

import pytest
from pydantic import ValidationError

import cnndsl
from cnndsl import CnnDslError

PAYLOAD = 'x"); import os; os.system("echo pwned") #'
HOSTILE_STRINGS = [
    PAYLOAD,
    '"""; import os; os.system("echo pwned"); """',
    "a\\nb\\\\c\\\"",
    "}{ <b> ]; n0 -> n1 [color=red] //",
    "\u202e\u0441onv",  # right-to-left override and a Cyrillic look-alike
]

BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(
        importlib.util.find_spec(f"cnndsl.backends.{name}") is None
        or importlib.util.find_spec(framework) is None,
        reason=f"{name} back end not installed",
    ))
    for name, framework in (("torch", "torch"), ("keras", "keras"))
]


def cnn_string(value: str) -> str:
    """A cnndsl string literal holding exactly ``value`` (backslash escapes quotes and itself)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def source_for(backend: str, net) -> str:
    module = __import__(f"cnndsl.backends.{backend}", fromlist=["to_source"])
    return module.to_source(net)


def assert_harmless(source: str, allowed_imports: set[str]) -> None:
    """The generated module parses, imports only its framework, and calls nothing of os."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= allowed_imports, ast.dump(node)
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in allowed_imports, ast.dump(node)
        if isinstance(node, ast.Name):
            assert node.id not in ("os", "system", "exec", "eval", "__import__"), node.id
    called = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not [f for f in called if "system" in f or "pwned" in f], called


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("bad", HOSTILE_STRINGS + ["class", "my layer", "сonv"])
def test_layer_names_must_be_identifiers(bad):
    with pytest.raises(CnnDslError) as e:
        cnndsl.loads(f"input 8x8x3\nconv 8 kernel=1 name={cnn_string(bad)}")
    assert "identifier" in str(e.value) or "keyword" in str(e.value)


def test_unicode_look_alike_names_are_not_tokens():
    with pytest.raises(CnnDslError, match="unexpected character"):
        cnndsl.loads("input 8x8x3\n\u0441onv 8 kernel=1")  # Cyrillic 'с'


@pytest.mark.parametrize("field", ["name", "layer", "output", "input_ref", "instance"])
def test_ir_from_json_refuses_non_identifier_names(field):
    net = cnndsl.loads("input 8x8x3\nblock b() { conv 8 kernel=1 }\nb()")
    data = json.loads(net.to_json())
    if field == "name":
        data["name"] = PAYLOAD
    elif field == "layer":
        data["layers"][1]["name"] = PAYLOAD
    elif field == "output":
        data["outputs"] = [PAYLOAD]
    elif field == "input_ref":
        data["layers"][1]["inputs"] = [PAYLOAD]
    else:
        data["layers"][1]["calls"][0]["instance"] = PAYLOAD
    with pytest.raises(ValidationError):
        cnndsl.Network.model_validate(data)


# -------------------------------------------------------------- strings and file names


def hostile_spec(value: str) -> str:
    literal = cnn_string(value)
    return (
        "network hostile\ninput 8x8x3\n"
        f"block b(tag={literal}, f=4) {{ conv f kernel=1 -> relu }}\n"
        f"b({literal})\nb({literal}, f=8)\n"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", HOSTILE_STRINGS[:4])
def test_strings_in_block_arguments_cannot_inject_code(backend, value):
    net = cnndsl.loads(hostile_spec(value))
    source = source_for(backend, net)
    assert_harmless(source, {"torch", "keras", "math"})


@pytest.mark.parametrize("backend", BACKENDS)
def test_file_names_cannot_inject_code(backend, tmp_path):
    path = tmp_path / 'x"""; import os; os.system("echo pwned"); """\n#.cnn'
    try:
        path.write_text("input 8x8x3\nconv 4 kernel=1\n")
    except OSError:
        pytest.skip("the file system refuses this name")
    net = cnndsl.load(path)
    assert_harmless(source_for(backend, net), {"torch", "keras", "math"})


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
def test_strings_cannot_break_the_dot(value):
    from cnndsl.backends import graphviz

    def visible(dot: str) -> list[str]:  # invisible spacers depend on the labels' widths
        return [line for line in dot.splitlines() if "style=invis" not in line]

    clean = visible(graphviz.to_dot(cnndsl.loads(hostile_spec("ok"))))
    dot = visible(graphviz.to_dot(cnndsl.loads(hostile_spec(value))))
    # the same graph: as many statements, nodes and edges, whatever the argument text
    assert len(dot) == len(clean)
    edge = re.compile(r"^\s*\w+ -> \w+ \[")
    assert sum(bool(edge.match(line)) for line in dot) == sum(bool(edge.match(line)) for line in clean)


# ------------------------------------------------------------------------------ imports


def test_imports_resolve_relative_to_the_importing_file_and_run_nothing(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text(
        'import "more.cnn"\nblock b() { c() }\n'
        # a top-level program in an imported file is never run: it would fail if it were
        "input 2x2x1\n99x99 conv 1\n"
    )
    (tmp_path / "lib" / "more.cnn").write_text("block c() { relu }\n")
    (tmp_path / "main.cnn").write_text('import "lib/blocks.cnn"\ninput 8x8x3\nb()\n')
    monkeypatch.chdir(tmp_path / "lib")  # not the directory of main.cnn
    net = cnndsl.load(tmp_path / "main.cnn")
    assert [layer.kind for layer in net.layers] == ["input", "activation"]


@pytest.mark.parametrize("target", ["fifo", "directory", "device"])
def test_imports_of_devices_directories_and_pipes_are_refused(tmp_path, target):
    import os

    if target == "fifo":
        os.mkfifo(tmp_path / "x.cnn")
    elif target == "directory":
        (tmp_path / "x.cnn").mkdir()
    else:  # a link that leads out of the spec's directory, to a device
        os.symlink("/dev/zero", tmp_path / "x.cnn")
    (tmp_path / "main.cnn").write_text('import "x.cnn"\ninput 8x8x3\nrelu\n')
    with pytest.raises(CnnDslError, match="not a regular file|is a directory|leads outside"):
        cnndsl.load(tmp_path / "main.cnn")


def test_huge_files_are_refused_without_reading_them_whole(tmp_path):
    from cnndsl.elaborate import MAX_SOURCE_BYTES

    path = tmp_path / "huge.cnn"
    with path.open("wb") as f:
        f.truncate(MAX_SOURCE_BYTES * 50)  # sparse: 500 MB that take no disk
    with pytest.raises(CnnDslError, match="larger than"):
        cnndsl.load(path)


@pytest.mark.parametrize(
    "body",
    [
        "repeat 30 { relu }",  # nodes made one by one
        "block two() { relu -> relu }\nrepeat 15 { two() }",  # and copied from a block call
    ],
)
def test_the_number_of_layers_is_bounded(monkeypatch, body):
    from cnndsl.elaborate import elaborator

    monkeypatch.setattr(elaborator, "MAX_NODES", 20)
    with pytest.raises(CnnDslError, match="the spec makes more than 20 layers"):
        cnndsl.loads("input 8x8x1\n" + body + "\n")
    cnndsl.loads("input 8x8x1\n" + body.replace("30", "19").replace("15", "9") + "\n")


# ------------------------------------------------------------ bounded work (issue 10 §3)

NO_LAYER_LOOPS = [
    "repeat 100000 { repeat 100000 { identity } }",
    "for a in [0] * 100000 { for b in [0] * 100000 { identity } }",
    "repeat 100000 { repeat 100000 { if false { relu } } }",
    "block nothing() { if false { relu } }\nrepeat 100000 { repeat 100000 { nothing() } }",
    "repeat 100000 { repeat 100000 { if 1 + 1 + 1 + 1 > 99 { relu } } }",
]


@pytest.mark.parametrize("body", NO_LAYER_LOOPS)
def test_loops_that_make_no_layer_stop_at_the_work_limit(monkeypatch, body):
    import time

    from cnndsl.elaborate import limits

    monkeypatch.setattr(limits, "MAX_STEPS", 20_000)
    start = time.process_time()
    with pytest.raises(CnnDslError, match="takes more than 20,000 steps") as e:
        cnndsl.loads("input 8x8x1\nrelu\n" + body + "\n")
    assert time.process_time() - start < 2  # processor time: a busy machine does not fail it
    assert len(e.value.diagnostics) == 1  # the load stops there: no cascade of errors
    assert e.value.location.line >= 3


def test_the_work_limit_leaves_room_for_every_zoo_spec_and_the_layer_limit():
    from conftest import SPEC_FILES

    from cnndsl.elaborate import MAX_NODES, MAX_STEPS, Elaborator
    from cnndsl.parser import parse

    for path in SPEC_FILES:
        elaborator = Elaborator()
        elaborator.elaborate(parse(path.read_text(), str(path)))
        assert elaborator.work.steps < MAX_STEPS / 100
    # the most layers a spec may make, one statement each, stays within the work limit
    elaborator = Elaborator()
    text = f"input 8x8x1\nrepeat {MAX_NODES // 2 - 1} {{ relu -> relu }}\n"
    elaborator.elaborate(parse(text, "<string>"))
    assert MAX_NODES - 2 <= len(elaborator.nodes) and elaborator.work.steps < MAX_STEPS


@pytest.mark.parametrize(
    "body",
    [
        "for x in [0] * 60000 + [0] * 60000 { relu }",  # `+` grows a list too
        "for x in [[0] * 1000] * 1000 { relu }",  # nested lists count their items
        "for x in [[0] * 60000, [0] * 60000] { relu }",
        "block b(x) { relu }\nb([[0] * 100000] * 100000)",  # through a call
        # doubling through nested calls: 2^k copies of one list
        "block b0(x) { relu }\n"
        + "".join(f"block b{i}(x) {{ b{i - 1}([x, x]) }}\n" for i in range(1, 40))
        + "b39([0] * 1000)",
    ],
)
def test_lists_cannot_grow_past_the_limit_by_any_operator(body):
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(CnnDslError, match="a list of more than 100,000 items"):
            cnndsl.loads("input 8x8x1\n" + body + "\n")
        assert tracemalloc.get_traced_memory()[1] < 50_000_000
    finally:
        tracemalloc.stop()


def test_imports_through_symlinked_directories_read_each_file_once(tmp_path, monkeypatch):
    import os
    import time

    from cnndsl.elaborate import modules

    (tmp_path / "lib").mkdir()
    os.symlink(".", tmp_path / "lib" / "l1")
    os.symlink(".", tmp_path / "lib" / "l2")
    levels = 22
    for i in range(levels):
        imports = f'import "l1/f{i + 1}.cnn"\nimport "l2/f{i + 1}.cnn"\n' if i + 1 < levels else ""
        (tmp_path / "lib" / f"f{i}.cnn").write_text(imports + f"block b{i}() {{ relu }}\n")
    (tmp_path / "lib" / "main.cnn").write_text('import "l1/l2/f0.cnn"\ninput 8x8x1\nb21()\n')
    reads = []
    real = modules.read_source
    monkeypatch.setattr(modules, "read_source", lambda path, at=None: reads.append(path) or real(path, at))
    start = time.process_time()
    net = cnndsl.load(tmp_path / "lib" / "main.cnn")
    assert time.process_time() - start < 5
    assert len(reads) == levels
    assert [layer.kind for layer in net.layers] == ["input", "activation"]


def test_a_file_imported_through_a_symlink_to_itself_is_a_cycle(tmp_path):
    import os

    os.symlink(".", tmp_path / "here")
    (tmp_path / "a.cnn").write_text('import "here/a.cnn"\ninput 8x8x1\nrelu\n')
    with pytest.raises(CnnDslError, match="import cycle"):
        cnndsl.load(tmp_path / "a.cnn")


def test_the_reader_never_blocks(tmp_path):
    import os
    import subprocess
    import sys

    fifo = tmp_path / "pipe.cnn"
    os.mkfifo(fifo)
    code = (
        "import sys; from pathlib import Path; from cnndsl import CnnDslError\n"
        "from cnndsl.elaborate import read_source\n"
        "try:\n    read_source(Path(sys.argv[1]))\nexcept CnnDslError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30)
    assert "is not a regular file" in out.stdout


def test_standard_input_gets_the_file_checks():
    import io

    from cnndsl.elaborate import MAX_SOURCE_BYTES
    from cnndsl.elaborate.sources import read_stream

    assert read_stream(io.BytesIO("\ufeffinput 8x8x1\n".encode())) == "input 8x8x1\n"
    with pytest.raises(CnnDslError, match="binary file"):
        read_stream(io.BytesIO(b"input 8x8x1\n\x00"))
    with pytest.raises(CnnDslError, match="larger than"):
        read_stream(io.BytesIO(b"#" * (MAX_SOURCE_BYTES + 10)))


# ---------------------------------------------------------- the import policy (issue 10 §4)

SECRET = "DB_PASSWORD=hunter2"


@pytest.fixture
def tree(tmp_path):
    """project/ (the spec's directory) with lib/, and a secret next to it, outside."""
    import os

    project = tmp_path / "project"
    (project / "lib").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    for name in (".env", "blocks.cnn", "passwd"):
        (tmp_path / "secret" / name).write_text(SECRET + "\n")
    (project / "secret.env").write_text(SECRET + "\n")
    (project / "lib" / "blocks.cnn").write_text('import "../common.cnn"\nblock b() { c() }\n')
    (project / "common.cnn").write_text("block c() { relu }\n")
    os.symlink(tmp_path / "secret", project / "outside")  # a directory link leading out
    os.symlink(tmp_path / "secret" / "blocks.cnn", project / "link.cnn")  # a file link out
    os.symlink(project / "secret.env", project / "env.cnn")  # a .cnn name for a non-spec
    return project


def load_importing(project, path: str, **kw):
    (project / "main.cnn").write_text(f'import "{path}"\ninput 8x8x3\nrelu\n')
    return cnndsl.load(project / "main.cnn", **kw)


@pytest.mark.parametrize(
    "path,message",
    [
        ("/etc/passwd", "relative path"),  # absolute
        ("{tmp}/secret/blocks.cnn", "relative path"),  # absolute, even to a .cnn file
        ("~/x.cnn", "relative path"),
        ("../secret/.env", "only .cnn specs"),  # not a spec
        ("secret.env", "only .cnn specs"),
        ("lib/.cnn", "only .cnn specs"),
        ("../secret/blocks.cnn", "leads outside"),  # `..` out of the spec's directory
        ("lib/../../secret/blocks.cnn", "leads outside"),
        ("outside/blocks.cnn", "leads outside"),  # a directory link out
        ("link.cnn", "leads outside"),  # a file link out
        ("env.cnn", "not a .cnn spec"),  # a .cnn link to a file that is not one
        ("/proc/self/environ", "relative path"),
        ("../../../../../../../../proc/self/environ", "only .cnn specs"),
        ("../../../../../../../../dev/zero.cnn", "leads outside"),
        ("/dev/zero", "relative path"),
    ],
)
def test_imports_cannot_read_files_outside_the_policy(tree, path, message):
    with pytest.raises(CnnDslError, match=message) as e:
        load_importing(tree, path.replace("{tmp}", str(tree.parent)))
    assert "hunter2" not in str(e.value)  # a refused file is never read, never shown


def test_imports_inside_the_spec_directory_may_use_dotdot(tree):
    net = load_importing(tree, "lib/blocks.cnn")  # which imports "../common.cnn"
    assert [layer.kind for layer in net.layers] == ["input", "activation"]
    (tree / "main.cnn").write_text('import "lib/blocks.cnn"\ninput 8x8x3\nb()\n')
    assert len(cnndsl.load(tree / "main.cnn").layers) == 2


def test_the_import_path_adds_directories(tree, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "s.cnn").write_text('block s() { tanh }\n')
    (tree / "main.cnn").write_text('import "s.cnn"\ninput 8x8x3\ns()\n')
    with pytest.raises(CnnDslError, match="no such file"):
        cnndsl.load(tree / "main.cnn")
    net = cnndsl.load(tree / "main.cnn", import_path=[shared])
    assert net.layers[-1].function == "tanh"
    text = (tree / "main.cnn").read_text()
    assert cnndsl.loads(text, str(tree / "main.cnn"), import_path=[str(shared)]) == net
    # an import-path file is held to the policy as well
    (shared / "s.cnn").write_text('import "../secret/blocks.cnn"\nblock s() { tanh }\n')
    with pytest.raises(CnnDslError, match="leads outside"):
        cnndsl.load(tree / "main.cnn", import_path=[shared])
    with pytest.raises(ValueError, match="not a directory"):
        cnndsl.load(tree / "main.cnn", import_path=[shared / "s.cnn"])


def test_the_import_path_on_the_command_line(tree, tmp_path):
    import subprocess
    import sys

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "s.cnn").write_text('block s() { tanh }\n')
    (tree / "main.cnn").write_text('import "s.cnn"\ninput 8x8x3\ns()\n')
    for command in (["check"], ["summary"], ["compile", "--target", "json"]):
        run = [sys.executable, "-m", "cnndsl", *command, str(tree / "main.cnn")]
        assert subprocess.run(run, capture_output=True).returncode == 1
        done = subprocess.run(run + ["--import-path", str(shared)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "cnndsl", "check", str(tree / "main.cnn"), "--import-path", str(tmp_path / "no")],
        capture_output=True, text=True,
    )
    assert bad.returncode == 2 and "not a directory" in bad.stderr


def test_importing_proc_kmsg_is_refused_at_once(tmp_path):
    import subprocess
    import sys

    (tmp_path / "main.cnn").write_text('import "/proc/kmsg"\ninput 8x8x3\nrelu\n')
    done = subprocess.run(
        [sys.executable, "-m", "cnndsl", "check", str(tmp_path / "main.cnn")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1 and "relative path" in done.stderr


def test_the_documentation_examples_load_with_the_import_path():
    # docs/examples/inception_module.cnn imports GoogLeNet's block from specs/ through the
    # import path, as docs/render_diagrams.py loads it
    from conftest import ROOT

    for path in sorted((ROOT / "docs" / "examples").glob("*.cnn")):
        cnndsl.load(path, import_path=[ROOT / "specs"])


def test_a_nul_character_in_a_path_is_never_an_internal_error(tmp_path, monkeypatch):
    """Issue 10 §5 (found by the fuzzer): a NUL in an import's path, or in the file name a
    spec is loaded under, made os.stat raise ValueError (exit 3)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.cnn").write_text("block b() { relu }\n")
    for text in ('import "lib\\0.cnn"', 'from "lib\x00.cnn" import b'):
        with pytest.raises(CnnDslError, match="an import path cannot hold a NUL character"):
            cnndsl.loads(f"input 8x8x3\n{text}\nrelu\n", "spec.cnn")
    net = cnndsl.loads('input 8x8x3\nimport "lib.cnn"\nb()\n', "sp\0ec.cnn")
    assert net.name == "sp_ec"
    with pytest.raises(CnnDslError, match="a file name cannot hold a NUL character"):
        cnndsl.load("lib\0.cnn")
