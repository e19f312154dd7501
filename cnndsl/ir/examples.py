"""Example spec lines for every layer kind: the registry the tests and the fuzzer draw from.

:data:`EXAMPLES` maps each kind (the ``kind`` of its IR class) to examples covering its options,
each ``(input shape, line)``: the spec ``input <shape>`` then ``<line>`` makes a network whose
last node is of that kind.  The activation kind has an example of every function
(:data:`~cnndsl.ir.ACTIVATIONS`), as a layer or a layer's ``activation=``.

What reads it: the language tests (each example loads, its notation reads back), the Keras and
PyTorch tests (each builds with the shapes and parameters of the analysis, or is refused with a
located error naming the layer and the target), the equivalence tests (both frameworks compute
one function) and the fuzzer (:func:`example_lines`).  A test fails when a kind has no example:
adding a kind is its IR class, its examples here, and a handler (or an explicit "unsupported")
in each back end.
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "input": (("8x8x3", "input 8x8x3"), ("10", "input 10")),
    # ---- convolutions
    "conv": (
        ("16x16x8", "3x3+2(S) conv 16 relu6"),
        ("16x16x8", "3x3(S) conv 16 groups=4 bias=off"),
        ("16x16x8", "3x3(S) conv 16 dilation=2 activation=leakyrelu"),
        ("16x16x8", "3x3 conv 24 padding=((0, 1), (1, 2)) elu"),
        ("15x14x8", "5x5+1(2) conv 24 silu"),
        ("15x14x8", "3x3+2(1) conv 8"),
        ("16x16x8", "7x1 conv 8 padding=((3, 3), (0, 0)) stride=(2, 1)"),
        ("16x16x8", "1x1+2(V) conv 4 hardswish"),
    ),
    "dwconv": (
        ("16x16x8", "3x3(S) dwconv 2 gelu"),
        ("15x15x8", "3x3 dwconv 2 stride=2 padding=((1, 0), (0, 1)) nobias"),
        ("16x16x8", "5x5+1(S) dwconv 1 elu"),
        ("16x16x8", "3x3+2(S) dwconv 1 relu6"),
    ),
    "sepconv": (
        ("16x16x8", "3x3+2(S) sepconv 16 depth_multiplier=2 selu"),
        ("16x16x8", "3x3(S) sepconv 12 dilation=2 nobias leakyrelu"),
        ("15x15x8", "3x3+2(1) sepconv 8"),
    ),
    "convtranspose": (
        ("5x6x3", "3x3+2(S) convtranspose 4 output_padding=1"),
        ("5x6x3", "3x3+2(V) convtranspose 4 relu"),
        ("5x6x3", "4x4+2(1) convtranspose 4"),
        ("5x6x3", "3x3+2(1) convtranspose 2 output_padding=1"),
        ("5x6x3", "3x3+2 convtranspose 2 padding=((1, 2), (0, 1)) bias=off"),
        ("5x6x3", "3x3 convtranspose 2 dilation=2"),
        ("5x6x3", "2x2+2(S) convtranspose 3"),
        ("5x6x3", "1x1+2(0) convtranspose 2 output_padding=1"),
        ("5x6x3", "2x2+3 convtranspose 2 padding=((1, 0), (0, 1))"),
        ("5x6x3", "2x2+3(V) convtranspose 2"),
    ),
    # ---- pooling
    "maxpool": (
        ("15x14x4", "3x3+2 maxpool padding=((1, 0), (0, 1))"),
        ("15x14x4", "3x3+2(1) maxpool ceil"),
        ("15x14x4", "2x2+2(V) maxpool ceil"),
        ("15x14x4", "2x2+2(1) maxpool ceil"),
        ("15x14x4", "3x3+1(1) maxpool"),
        ("15x14x4", "3x3+2(S) maxpool"),
        ("16x16x4", "2x2 maxpool"),
    ),
    "avgpool": (
        ("15x14x4", "3x3+2(1) avgpool"),
        ("15x14x4", "3x3+2(1) avgpool include_pad=off"),
        ("15x14x4", "3x3+2(1) avgpool ceil"),
        ("15x14x4", "3x3+2(1) avgpool ceil include_pad=off"),
        ("15x14x4", "2x2+2(V) avgpool ceil"),
        ("15x14x4", "3x3+1 avgpool padding=((1, 0), (1, 1)) include_pad=off"),
        ("15x14x4", "3x3+2(S) avgpool include_pad=on"),
        ("15x14x4", "3x3+1(1) avgpool include_pad=off"),
        ("15x14x4", "3x3+2(S) avgpool"),
        ("16x16x4", "2x2+2(S) avgpool"),
        ("16x16x4", "3x3+1(S) avgpool"),
    ),
    "adaptiveavgpool": (
        ("14x14x8", "adaptiveavgpool 7"),
        ("14x14x8", "adaptiveavgpool 4x3"),
        ("13x13x8", "adaptiveavgpool output_size=(6, 6)"),
        ("5x5x8", "adaptiveavgpool 7"),
        ("14x14x8", "adaptiveavgpool 1"),
    ),
    "globalavgpool": (("8x8x4", "gap"), ("8x8x4", "globalavgpool keepdims")),
    "globalmaxpool": (("8x8x4", "globalmaxpool"), ("8x8x4", "gmp keepdims")),
    "depthmaxpool": (("4x4x12", "depthmaxpool 3"), ("4x4x8", "depthmaxpool 2")),
    # ---- normalization and regularization
    "batchnorm": (
        ("8x8x4", "bn"),
        ("8x8x4", "bn epsilon=0.00001 momentum=0.9"),
        ("8x8x4", "bn center=off scale=off"),
        ("8x8x4", "bn center=off"),
        ("10", "bn scale=off momentum=0.5"),
    ),
    "layernorm": (
        ("14x14x8", "layernorm"),
        ("14x14x8", "layernorm epsilon=1e-6"),
        ("16", "layer_norm eps=1e-5 center=off"),
        ("14x14x8", "layernorm scale=off"),
    ),
    "lrn": (
        ("4x4x12", "lrn 2 alpha=0.0001 beta=0.75 bias=2"),
        ("4x4x7", "lrn radius=3 alpha=0.3 beta=0.6 bias=1.5"),
        ("4x4x8", "lrn"),
    ),
    "dropout": (("10", "dropout 0.25"), ("8x8x4", "dropout 0")),
    "stochasticdepth": (
        ("14x14x8", "stochasticdepth 0.1"),
        ("14x14x8", "droppath 0.2 batch"),
        ("14x14x8", "stochastic_depth p=0"),
    ),
    # ---- dense and activations
    "dense": (("10", "dense 4 relu"), ("10", "dense 5 nobias tanh"), ("10", "dense 3 softmax")),
    "pointwise": (
        ("14x14x8", "pointwise 32 gelu"),
        ("14x14x8", "pointwise 8 bias=off"),
        ("16", "pointwise_dense 4 relu"),
    ),
    "activation": (
        ("6x6x4", "relu"),
        ("6x6x4", "relu6"),
        ("6x6x4", "leakyrelu"),
        ("6x6x4", "leakyrelu 0.2"),
        ("6x6x4", "elu"),
        ("6x6x4", "elu 0.5"),
        ("6x6x4", "selu"),
        ("6x6x4", "tanh"),
        ("6x6x4", "sigmoid"),
        ("6x6x4", "softmax"),
        ("10", "softmax"),
        ("6x6x4", "linear"),
        ("6x6x4", "silu"),
        ("6x6x4", "gelu"),
        ("6x6x4", "gelu_tanh"),
        ("6x6x4", "hardsigmoid"),
        ("6x6x4", "hardswish"),
        ("6x6x4", "1x1 conv 4 hard_swish"),
        ("6x6x4", "1x1 conv 4 activation=hardsigmoid"),
        ("6x6x4", "pointwise 4 gelu_tanh"),
    ),
    # ---- reshaping
    "flatten": (("4x3x5", "flatten"), ("1x1x8", "flatten"), ("10", "flatten")),
    "zeropad": (("6x6x2", "zeropad 1"), ("6x6x2", "zeropad padding=((1, 0), (2, 1))")),
    "upsample": (
        ("4x4x2", "upsample 2"),
        ("4x4x2", "upsample size=(1, 2) bilinear"),
        ("4x4x2", "upsample 3 bilinear"),
    ),
    "reshape": (
        ("1x1x16", "reshape 16"),
        ("16", "reshape 1x1x16"),
        ("4x4x8", "reshape shape=(2, 8, -1)"),
        ("4x4x8", "reshape shape=(-1,)"),
    ),
    "crop": (
        ("14x14x8", "crop 1"),
        ("14x14x8", "crop cropping=((0, 1), (0, 1))"),
        ("14x14x8", "cropping2d 2x3"),
    ),
    "split": (("14x14x8", "split 2 part=0"), ("14x14x8", "split 4 part=3"), ("16", "split 2 1")),
    "shuffle": (("14x14x8", "shuffle 2"), ("14x14x12", "channel_shuffle 3")),
    # ---- scaling
    "rescaling": (
        ("14x14x3", "rescaling 1/255"),
        ("14x14x3", "rescaling 1/127.5 offset=-1"),
        ("14x14x3", "rescaling scale=(0.5, 2, 4)"),
        ("14x14x3", "rescale 0.17"),
    ),
    "normalization": (
        ("14x14x3", "normalization"),
        (
            "14x14x3",
            "normalization mean=(0.485, 0.456, 0.406)"
            " variance=(0.229*0.229, 0.224*0.224, 0.225*0.225)",
        ),
        ("16", "normalization mean=0.5 variance=0.25"),
    ),
    "layerscale": (
        ("14x14x8", "layerscale"),
        ("14x14x8", "layerscale 0.1"),
        ("16", "layerscale init=1"),
    ),
    # ---- merges
    "add": (
        ("8x8x4", "add { 1x1 conv 4 | identity }"),
        ("8x8x4", "add { 1x1 conv 4 relu | identity | 3x3(S) conv 4 }"),
    ),
    "concat": (("8x8x4", "concat { identity | 1x1 conv 8 }"), ("10", "concat { identity | dense 4 }")),
    "multiply": (
        ("8x8x16", "multiply { identity | gap -> dense 16 sigmoid }"),
        ("8x8x16", "multiply { identity | gap keepdims -> 1x1 conv 16 sigmoid }"),
        ("8x8x4", "multiply { identity | 1x1 conv 4 }"),
    ),
}


def example_spec(shape: str, line: str) -> str:
    """The spec text of an example: its input, then its line (an ``input`` example is alone)."""
    return f"{line}\n" if line.startswith("input ") else f"input {shape}\n{line}\n"


def example_lines() -> list[tuple[str, str, str]]:
    """Every example as (kind, input shape, line), in the registry's order: what the fuzzer
    and the parametrized tests draw from."""
    return [(kind, shape, line) for kind, lines in EXAMPLES.items() for shape, line in lines]
