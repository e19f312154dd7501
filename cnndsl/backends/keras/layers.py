"""The custom Keras layers of the models this back end makes, live and generated.

Keras has no layer for a few of the semantics that cnndsl keeps exactly (PyTorch's padded max and
average pooling, with its ceil mode, for inputs of any size, local response normalization, max
pooling across channels, ConvNeXt's layer scale and stochastic depth, ShuffleNet's channel split
and shuffle, the `leakyrelu` activation of a layer).  Generated source (which
:func:`cnndsl.backends.keras.build` runs)
defines the ones it uses by copying their text from this file: the code generator reads it with
``ast``, without importing this module or Keras.  So each definition must be self-contained: it
may use only ``keras`` (and the definitions here it names), it is black-formatted, and it is
registered for serialization.  The definitions listed in ``__all__`` are copied, in the order of
the file.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = [
    "CUSTOM_OBJECTS",
    "ChannelShuffle",
    "ChannelSplit",
    "DepthMaxPooling2D",
    "LayerScale",
    "LocalResponseNormalization",
    "NegInfPadding2D",
    "PaddedPooling2D",
    "PaddedAveragePooling2D",
    "PaddedMaxPooling2D",
    "StochasticDepth",
    "gelu_tanh",
    "leaky_relu",
]


@keras.saving.register_keras_serializable(package="cnndsl")
class NegInfPadding2D(keras.layers.Layer):
    """Pads height and width with -inf, so that a max pooling after it never picks a padded cell
    (PyTorch's padded max pooling).  padding: as ZeroPadding2D's, an int, (height, width) or
    ((top, bottom), (left, right))."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = (padding, padding)
        self.padding = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)

    def call(self, x):
        (top, bottom), (left, right) = self.padding
        pads = [[0, 0], [top, bottom], [left, right], [0, 0]]
        return keras.ops.pad(x, pads, constant_values=float("-inf"))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class PaddedPooling2D(keras.layers.Layer):
    """The padding of PyTorch's pooling, for an input of any size: ``padding`` is
    ((top, bottom), (left, right)), or "same" (TensorFlow's SAME padding for the input's size);
    with ceil_mode, a last partial window is kept when it starts inside the input or the top/left
    padding.  Its subclasses pool the input so padded."""

    def __init__(self, pool_size, strides, padding, ceil_mode=False, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = tuple(pool_size)
        self.strides = tuple(strides)
        if padding != "same":
            padding = tuple(tuple(int(p) for p in side) for side in padding)
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)

    def pads(self, x):
        """[(before, after, extra)] for the height and the width of x: the padding, and the
        cells to add after it so that a VALID pooling gives PyTorch's output size.  Integers
        where the size is known when the model is built; tensors where it is not (a model of
        an open input size, traced by tf.function)."""
        shape = keras.ops.shape(x)
        pads = []
        for axis, (k, s) in enumerate(zip(self.pool_size, self.strides)):
            n = shape[1 + axis]
            if self.padding == "same":
                total = self._at_least_0((-(-n // s) - 1) * s + k - n)
                before, after = total // 2, total - total // 2
            else:
                before, after = self.padding[axis]
            span = n + before + after - k
            out = span // s + 1
            if self.ceil_mode:
                out = -(-span // s) + 1
                late = (out - 1) * s >= n + before
                out = out - (int(late) if isinstance(late, bool) else keras.ops.cast(late, "int32"))
            pads.append((before, after, self._at_least_0((out - 1) * s + k - (n + before + after))))
        return pads

    @staticmethod
    def _at_least_0(value):
        return max(value, 0) if isinstance(value, int) else keras.ops.maximum(value, 0)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
        }


@keras.saving.register_keras_serializable(package="cnndsl")
class PaddedAveragePooling2D(PaddedPooling2D):
    """Average pooling as PyTorch's avg_pool2d (see PaddedPooling2D for the padding): each
    window's sum is divided by its cells inside the input (count_include_pad off) or inside the
    padded input (on)."""

    def __init__(
        self, pool_size, strides, padding, ceil_mode=False, count_include_pad=True, **kwargs
    ):
        super().__init__(pool_size, strides, padding, ceil_mode, **kwargs)
        self.count_include_pad = bool(count_include_pad)

    def call(self, x):
        (top, bottom, below), (left, right, beside) = self.pads(x)
        # mask: 1 on the cells a window's average counts, 0 on the others
        mask = keras.ops.ones_like(x[:1, :, :, :1])
        if self.count_include_pad:
            counted = [[0, 0], [top, bottom], [left, right], [0, 0]]
            mask = keras.ops.pad(mask, counted, constant_values=1)
            mask_pads = [[0, 0], [0, below], [0, beside], [0, 0]]
        else:
            mask_pads = [[0, 0], [top, bottom + below], [left, right + beside], [0, 0]]
        mask = keras.ops.pad(mask, mask_pads)
        x = keras.ops.pad(x, [[0, 0], [top, bottom + below], [left, right + beside], [0, 0]])
        sums = keras.ops.average_pool(x, self.pool_size, self.strides, "valid")
        counts = keras.ops.average_pool(mask, self.pool_size, self.strides, "valid")
        return sums / counts

    def get_config(self):
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


@keras.saving.register_keras_serializable(package="cnndsl")
class PaddedMaxPooling2D(PaddedPooling2D):
    """Max pooling as PyTorch's max_pool2d (see PaddedPooling2D for the padding): padded cells
    never win."""

    def call(self, x):
        (top, bottom, below), (left, right, beside) = self.pads(x)
        pads = [[0, 0], [top, bottom + below], [left, right + beside], [0, 0]]
        x = keras.ops.pad(x, pads, constant_values=float("-inf"))
        return keras.ops.max_pool(x, self.pool_size, self.strides, "valid")


@keras.saving.register_keras_serializable(package="cnndsl")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels, as tf.nn.local_response_normalization:
    x / (bias + alpha * sum(x[..., c - depth_radius : c + depth_radius + 1] ** 2)) ** beta."""

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, x):
        r, channels = self.depth_radius, x.shape[-1]
        squares = keras.ops.pad(keras.ops.square(x), [[0, 0]] * (len(x.shape) - 1) + [[r, r]])
        total = squares[..., :channels]
        for i in range(1, 2 * r + 1):
            total = total + squares[..., i : i + channels]
        return x / keras.ops.power(self.bias + self.alpha * total, self.beta)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }


@keras.saving.register_keras_serializable(package="cnndsl")
class DepthMaxPooling2D(keras.layers.Layer):
    """Max pooling across channels: the max of every pool_size consecutive channels,
    H x W x C -> H x W x C/pool_size (tf.nn.max_pool with ksize = strides = (1, 1, 1, k))."""

    def __init__(self, pool_size, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, x):
        height, width = keras.ops.shape(x)[1:3]  # tensors for an open size, in tf.function
        groups = (-1, height, width, x.shape[-1] // self.pool_size, self.pool_size)
        return keras.ops.max(keras.ops.reshape(x, groups), axis=-1)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="cnndsl")
class LayerScale(keras.layers.Layer):
    """Multiplies each channel by a learnable factor, initialised to init_values (ConvNeXt's
    layer scale, as keras.applications' ConvNeXt defines it): gamma of shape (channels,)."""

    def __init__(self, init_values=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.init_values = float(init_values)

    def build(self, input_shape):
        self.gamma = self.add_weight(
            name="gamma",
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init_values),
            trainable=True,
        )

    def call(self, x):
        return x * self.gamma

    def get_config(self):
        return {**super().get_config(), "init_values": self.init_values}


@keras.saving.register_keras_serializable(package="cnndsl")
class StochasticDepth(keras.layers.Layer):
    """Stochastic depth: in training, each example's tensor is zeroed with probability
    drop_path_rate and the others divided by 1 - drop_path_rate (mode "row"; "batch" draws once
    for the whole batch); the identity at inference (keras.applications' ConvNeXt layer,
    torchvision's StochasticDepth)."""

    def __init__(self, drop_path_rate, mode="row", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.drop_path_rate = float(drop_path_rate)
        self.mode = mode
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.drop_path_rate == 0:
            return x
        keep = 1 - self.drop_path_rate
        batch = keras.ops.shape(x)[0] if self.mode == "row" else 1
        shape = (batch,) + (1,) * (len(x.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=x.dtype)
        return x / keep * keras.ops.floor(keep + noise)

    def get_config(self):
        config = {"drop_path_rate": self.drop_path_rate, "mode": self.mode, "seed": self.seed}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="cnndsl")
class ChannelSplit(keras.layers.Layer):
    """One of `parts` equal groups of consecutive channels: channels [part * C/parts,
    (part + 1) * C/parts) (ShuffleNetV2's split, PyTorch's x.chunk(parts, dim=1)[part])."""

    def __init__(self, parts, part=0, **kwargs):
        super().__init__(**kwargs)
        self.parts = int(parts)
        self.part = int(part)

    def call(self, x):
        size = x.shape[-1] // self.parts
        return x[..., self.part * size : (self.part + 1) * size]

    def get_config(self):
        return {**super().get_config(), "parts": self.parts, "part": self.part}


@keras.saving.register_keras_serializable(package="cnndsl")
class ChannelShuffle(keras.layers.Layer):
    """ShuffleNet's channel shuffle: the channels, seen as `groups` rows of C/groups, read
    column by column (output channel j * groups + i is input channel i * C/groups + j)."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, x):
        shape = keras.ops.shape(x)  # integers where the size is known, tensors where it is open
        height, width, channels = shape[1], shape[2], x.shape[-1]
        rows = keras.ops.reshape(x, (-1, height, width, self.groups, channels // self.groups))
        columns = keras.ops.transpose(rows, (0, 1, 2, 4, 3))
        return keras.ops.reshape(columns, (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package="cnndsl")
def leaky_relu(x):
    """The `leakyrelu` activation of a layer: negative slope 0.3, as keras.layers.LeakyReLU."""
    return keras.ops.leaky_relu(x, negative_slope=0.3)


@keras.saving.register_keras_serializable(package="cnndsl")
def gelu_tanh(x):
    """The `gelu_tanh` activation: GELU's tanh approximation (PyTorch's approximate="tanh")."""
    return keras.activations.gelu(x, approximate=True)


CUSTOM_OBJECTS: dict[str, Any] = {
    obj.__name__: obj
    for obj in (
        NegInfPadding2D,
        PaddedAveragePooling2D,
        PaddedMaxPooling2D,
        LocalResponseNormalization,
        DepthMaxPooling2D,
        LayerScale,
        StochasticDepth,
        ChannelSplit,
        ChannelShuffle,
        leaky_relu,
        gelu_tanh,
    )
}
"""The custom layers by name (``keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)``)."""
