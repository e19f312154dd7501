"""The registry of targets: the command line, Network.to_source and Network.to_model use it."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl import backends
from cnndsl.cli import build_parser

NET = "input 8x8x3\n3x3(S) conv 4 relu\ngap\ndense 2\n"


def test_the_command_line_offers_every_target():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["compile"]
    target = next(a for a in sub._actions if a.dest == "target")
    assert tuple(target.choices) == tuple(backends.TARGETS)


def test_a_new_target_needs_only_a_registry_entry(monkeypatch, capsys):
    """A target added to the registry is compiled by the command line and written by
    Network.to_source, with no change to the IR or the CLI."""
    entry = backends.Target("ir", "the IR as JSON, again", "cnndsl.backends", "json_text")
    model = backends.Target(
        "echo", "the keras source again", "cnndsl.backends.keras", "to_source", build="to_source"
    )
    monkeypatch.setitem(backends.TARGETS, "ir", entry)
    monkeypatch.setitem(backends.TARGETS, "echo", model)
    net = cnndsl.loads(NET, "n.cnn")
    assert net.to_source("echo") == net.to_source("keras") == net.to_model("echo")
    from cnndsl.cli import main

    spec = "-"
    io = __import__("io")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(NET.encode())))  # read as bytes
    assert main(["compile", spec, "--target", "ir"]) == 0
    assert capsys.readouterr().out == cnndsl.loads(NET, "<stdin>").to_json() + "\n"


def test_unknown_and_non_model_targets_are_refused():
    net = cnndsl.loads(NET, "n.cnn")
    with pytest.raises(ValueError, match="unknown target 'tf'"):
        net.to_source("tf")
    with pytest.raises(ValueError, match="'json' is not a model target: choose one of keras, torch"):
        net.to_source("json")
    with pytest.raises(ValueError, match="'dot' is not a model target"):
        net.to_model("dot")
