"""The network: named nodes in topological order, and its outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import PydanticSerializationError, to_json

# importing the modules registers every layer class
from . import conv, core, merge, norm, pool, reshape, scaling  # noqa: F401
from .base import Identifier, Layer
from .core import Input

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..analysis import Analysis
    from ..report import Summary

LAYER_CLASSES: tuple[type[Layer], ...] = tuple(Layer.registry().values())
"""Every layer class, in registration order."""

AnyLayer = Annotated[Union[LAYER_CLASSES], Field(discriminator="kind")]  # type: ignore[valid-type]
"""The discriminated union of every layer kind."""


class Origins(NamedTuple):
    """How the elaborator made a network's nodes, which :func:`cnndsl.analysis.analyze` uses
    to go faster.

    ``templates[i]`` is the validated layer node i was placed from: a block called again or a
    ``repeat`` places one layer many times, and the nodes placed from one template have the
    same facts for the same input shapes, so the analysis computes those once.  ``inputs[i]``
    are node i's inputs as positions in ``network.layers``.  Both describe the network's
    ``layers`` as the elaborator made them (``Network`` drops its origins when ``layers`` is
    assigned)."""

    templates: list[Layer]
    inputs: list[tuple[int, ...]]


class Network(BaseModel):
    """A whole network, the public object of cnndsl.

    Fields:
        name: the network's name (``network vgg16``, or the file's stem)
        layers: every node, in topological order (inputs first); each is an instance of
            one of the classes of :mod:`cnndsl.ir`, discriminated by ``kind``
        outputs: names of the output nodes, in the order a model returns them
        training_outputs: those of ``outputs`` that exist only in training, such as GoogLeNet's
            auxiliary classifiers (``output logits, aux1 (training)``): a model in training
            mode computes and returns every output; in inference mode it returns the others
            and computes only what they need (:meth:`training_only`)

    Derived facts (shapes, parameters, MACs, receptive fields, memory) are computed once,
    on first use, by :attr:`analysis`.  ``Network.model_validate_json(net.model_dump_json())``
    gives back an equal network.
    """

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    layers: list[AnyLayer]  # type: ignore[valid-type]
    outputs: list[Identifier]
    training_outputs: list[Identifier] = []

    _index: dict[str, Layer] | None = PrivateAttr(default=None)  # by name, made on first use
    _analysis: Any = PrivateAttr(default=None)
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _origins: Origins | None = PrivateAttr(default=None)
    """From the elaborator: how it made the nodes (:class:`Origins`), handed to
    :func:`cnndsl.analysis.analyze` by :attr:`analysis`, then dropped."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "layers":  # the origins described the layers being replaced
            self._origins = None
            self._analysis = None
            self._index = None
        super().__setattr__(name, value)

    @model_validator(mode="after")
    def _check_graph(self):
        index: dict[str, Layer] = {}
        for layer in self.layers:
            name = layer.name
            if name in index:
                raise ValueError(f"two nodes are named '{name}'")
            inputs = layer.inputs
            for source in inputs:
                if source not in index:
                    raise ValueError(
                        f"node '{name}' reads '{source}', which is not an earlier node"
                    )
            n = len(inputs)
            if n < layer.min_inputs or (layer.max_inputs is not None and n > layer.max_inputs):
                raise ValueError(f"node '{name}' ({layer.kind}) cannot take {n} inputs")
            index[name] = layer
        if not self.outputs:
            raise ValueError("a network needs at least one output")
        for name in self.outputs:
            if name not in index:
                raise ValueError(f"output '{name}' is not a node")
        if len(set(self.outputs)) != len(self.outputs):
            twice = next(name for name in self.outputs if self.outputs.count(name) > 1)
            raise ValueError(f"'{twice}' is listed twice as an output")
        for name in self.training_outputs:
            if name not in self.outputs:
                raise ValueError(f"training output '{name}' is not an output")
        if len(set(self.training_outputs)) != len(self.training_outputs):
            twice = next(n for n in self.training_outputs if self.training_outputs.count(n) > 1)
            raise ValueError(f"'{twice}' is listed twice as a training output")
        if len(self.training_outputs) == len(self.outputs):
            raise ValueError("every output is a training output: a network needs one for inference")
        self._index = index
        return self

    # ---- graph access
    def __getitem__(self, name: str) -> Layer:
        return self._by_name()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name()

    def _by_name(self) -> dict[str, Layer]:
        if self._index is None:
            self._index = {layer.name: layer for layer in self.layers}
        return self._index

    def __iter__(self):  # type: ignore[override]
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def inputs(self) -> list[Input]:
        """The input nodes, in declaration order."""
        return [layer for layer in self.layers if layer.kind == "input"]

    @property
    def inference_outputs(self) -> list[str]:
        """The outputs a model returns in inference mode: all but the training outputs."""
        training = set(self.training_outputs)
        return [name for name in self.outputs if name not in training]

    def training_only(self) -> set[str]:
        """The nodes only training outputs need: a model computes them in training mode only."""
        if not self.training_outputs:
            return set()
        needed = set(self.inference_outputs)
        for layer in reversed(self.layers):
            if layer.name in needed:
                needed.update(layer.inputs)
        return {layer.name for layer in self.layers if layer.name not in needed}

    def consumers(self) -> dict[str, list[str]]:
        """For each node, the nodes that read it."""
        users: dict[str, list[str]] = {layer.name: [] for layer in self.layers}
        for layer in self.layers:
            for name in layer.inputs:
                users[name].append(layer.name)
        return users

    # ---- analysis
    @property
    def analysis(self) -> Analysis:
        """Shapes, parameters, MACs, receptive fields (computed once, then cached).

        Raises :class:`cnndsl.CnnDslError` at the first layer that cannot apply.
        """
        if self._analysis is None:
            from ..analysis import analyze

            self._analysis = analyze(self, self._origins)
            self._origins = None
        return self._analysis

    def shape(self, name: str) -> tuple[int, ...]:
        """Output shape of a node (without the batch axis)."""
        return self.analysis[name].output_shape

    def summary(
        self,
        batch_size: int = 1,
        dtype: str = "float32",
        format: str = "table",
        *,
        columns: Iterable[str] | None = None,
        depth: int | None = None,
        width: int | None = None,
        convention: str = "keras",
    ) -> Summary:
        """The summary ``cnndsl summary`` prints: a :class:`~cnndsl.report.Summary`, the text
        itself (a ``str``) that Jupyter shows as an HTML table.

        format: ``table``, ``markdown``, ``csv`` or ``json``; columns: the columns of the
        table, markdown and CSV, by name (:data:`cnndsl.report.COLUMNS`: ``name``, ``shape``,
        ``params``, ``trainable``, ``nontrainable``, ``macs``, ``memory``, ``rf``, ``line``,
        ``connected``, ``block``); depth: show block calls nested deeper than this as one
        row with their totals; width: wrap the table to this many characters (None: no
        limit); convention: ``keras`` (batch-norm statistics are non-trainable parameters)
        or ``torch`` (they are buffers).  JSON always holds every layer and every field.
        """
        from ..report import Summary, render, to_html

        options = dict(columns=columns, depth=depth, convention=convention)
        text = render(self, batch_size, dtype, format, width=width, **options)
        html = (lambda: to_html(self, batch_size, dtype, **options)) if format == "table" else None
        return Summary(text, html)

    def to_json(self, indent: int | None = 2) -> str:
        """The IR as JSON (lossless: :meth:`from_json` gives back an equal network).

        A string that UTF-8 cannot encode (a file named with undecodable bytes) is written
        as error messages show it, with a backslash escape (``\\udcff``)."""
        try:
            return self.model_dump_json(indent=indent)
        except PydanticSerializationError:
            from ..display import json_safe

            return to_json(json_safe(self.model_dump(mode="json")), indent=indent).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Network:
        return cls.model_validate_json(text)

    def __eq__(self, other: object) -> bool:
        """Networks are equal when their fields are (cached analysis and sources aside)."""
        if not isinstance(other, Network):
            return NotImplemented
        mine = (self.name, self.outputs, self.training_outputs, self.layers)
        return mine == (other.name, other.outputs, other.training_outputs, other.layers)

    __hash__ = None  # type: ignore[assignment]

    # ---- models (each back end, and its framework, imported on use: cnndsl.backends.TARGETS)
    def to_keras(self, *, logits: bool = False, training_outputs: bool = False):
        """A live ``keras.Model`` (functional API); needs TensorFlow/Keras 3.  With ``logits``,
        the outputs' final softmax (or sigmoid) is left out (:mod:`cnndsl.backends.logits`):
        train it with ``from_logits=True``.  A network with training outputs gives its
        inference model, or with ``training_outputs`` the model that also computes and returns
        them (a functional model cannot switch by mode)."""
        return self.to_model("keras", logits=logits, training_outputs=training_outputs)

    def to_torch(self, *, logits: bool = False):
        """A live ``torch.nn.Module`` taking NCHW input; needs PyTorch.  With ``logits``, the
        outputs' final softmax (or sigmoid) is left out, as torchvision's models return them:
        train it with ``F.cross_entropy``.  Training outputs are returned (and computed) in
        training mode only."""
        return self.to_model("torch", logits=logits)

    def to_model(self, target: str, *, logits: bool = False, **options):
        """The live model of a model target (``"keras"``, ``"torch"``); needs its framework.
        ``options`` go to the target's ``build`` (Keras: ``training_outputs``)."""
        from ..backends import build

        return build(self, target, logits=logits, **options)

    def to_source(self, target: str, *, logits: bool = False) -> str:
        """Standalone Python source of the model of a model target (``"keras"``, ``"torch"``):
        the module ``cnndsl compile --target`` (``--logits``) writes, which :meth:`to_model`
        runs."""
        from ..backends import source

        return source(self, target, logits=logits)

    # ---- diagrams (the Graphviz back end, imported on use)
    def to_graphviz(self, **options):
        """The diagram as a ``graphviz.Source``; options as
        :func:`cnndsl.backends.graphviz.to_dot` (collapse, rankdir, shapes, params ...)."""
        from ..backends.graphviz import to_graphviz

        return to_graphviz(self, **options)

    def _repr_svg_(self) -> str | None:
        """Jupyter shows a network as its diagram (block calls collapsed beyond 60 layers);
        without Graphviz, as its repr."""
        from ..backends.graphviz import render
        from ..errors import CnnDslError

        try:
            return render(self, "svg", collapse=len(self.layers) > 60).decode("utf-8")
        except CnnDslError:
            return None

    def __repr__(self) -> str:
        return f"<Network {self.name!r}: {len(self.layers)} nodes, outputs {self.outputs}>"

    __str__ = __repr__
