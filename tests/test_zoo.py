"""The zoo's numbers against independent references (../shared/refs/reference-numbers.json):
keras.applications, torchvision, timm, the book, and published receptive-field tables."""

from __future__ import annotations

import pytest

import cnndsl
from conftest import SPEC_FILES, SPECS


def load(name: str) -> cnndsl.Network:
    return cnndsl.load(SPECS / f"{name}.cnn")


def batchnorms(net) -> int:
    return sum(layer.kind == "batchnorm" for layer in net.layers)


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_spec_compiles_and_round_trips(path):
    net = cnndsl.load(path)
    assert net.analysis.total_params > 0
    again = cnndsl.Network.from_json(net.to_json())
    assert again == net
    assert again.analysis.total_params == net.analysis.total_params


def test_zoo_is_complete():
    expected = {
        "fashion_mnist", "lenet5", "alexnet", "alexnet_torchvision", "googlenet",
        "googlenet_torchvision", "vgg16", "resnet34", "resnet34_torchvision",
        "resnet50_torchvision", "resnet152_torchvision", "resnet50_keras", "xception",
        "mobilenet_v2_keras", "mobilenet_v2_torchvision", "se_resnet50", "unet",
        "classify_localize", "memory_example",
    }
    assert expected <= {p.stem for p in SPEC_FILES}


# ---------------------------------------------------------------------- keras.applications

KERAS_SPECS = {
    "resnet50_keras": "ResNet50",
    "xception": "Xception",
    "mobilenet_v2_keras": "MobileNetV2",
    "vgg16": "VGG16",
}


@pytest.mark.parametrize("spec,model", KERAS_SPECS.items())
def test_keras_applications_parameters(spec, model, refs):
    ref = refs["keras_applications"][model]
    a = load(spec).analysis
    assert a.total_params == ref["total_params"]
    assert a.trainable_params == ref["trainable_params"]
    assert a.non_trainable_params == ref["non_trainable_params"]


# ------------------------------------------------------------------------------ torchvision

TORCHVISION_SPECS = {
    "alexnet_torchvision": "alexnet",
    "googlenet_torchvision": "googlenet",
    "vgg16": "vgg16",
    "resnet34_torchvision": "resnet34",
    "resnet50_torchvision": "resnet50",
    "resnet152_torchvision": "resnet152",
    "mobilenet_v2_torchvision": "mobilenet_v2",
}


@pytest.mark.parametrize("spec,model", TORCHVISION_SPECS.items())
def test_torchvision_parameters_and_macs(spec, model, refs):
    ref = refs["torchvision"][model]
    net = load(spec)
    a = net.analysis
    assert a.trainable_params == ref["params"]
    # torchvision's buffers: running mean and variance, plus one num_batches_tracked per BN
    assert a.non_trainable_params + batchnorms(net) == ref["bn_buffer_elements"]
    assert a.macs == ref["conv_linear_macs_224"]


def test_se_resnet50_matches_timm(refs):
    assert load("se_resnet50").analysis.trainable_params == refs["timm"]["seresnet50"]["params"]


# ------------------------------------------------------------------------ receptive fields


def test_vgg16_receptive_fields(refs):
    net = load("vgg16")
    table = refs["receptive_field_vgg16_224"]
    for i in range(1, 6):
        rf = net.analysis[f"block{i}_pool"].receptive_field.as_dict()
        size, stride, padding = table[f"pool{i}"]
        assert rf == {"size": [size] * 2, "stride": [stride] * 2, "padding": [padding] * 2, "global": False}


def test_resnet50_receptive_field_matches_published_table():
    # google-research/receptive_field lists 483 for ResNet-50 v1 at its last block; global
    # average pooling over the final 7x7 map (effective stride 32) adds 6 * 32.
    a = load("resnet50_keras").analysis
    last_add = [i for i in a if i.layer.kind == "activation"][-1]
    assert last_add.receptive_field.as_dict()["size"] == [483, 483]
    assert a["avg_pool"].receptive_field.as_dict()["size"] == [483 + 6 * 32] * 2


# -------------------------------------------------------------------------------- the book


def test_fashion_mnist(refs):
    ref = refs["book"]["fashion_mnist_cnn"]
    a = load("fashion_mnist").analysis
    assert a.total_params == ref["total_params"]
    shapes = [list(i.output_shape) for i in a if i.layer.kind != "input"]
    assert shapes == ref["output_shapes"]


def test_lenet5_shapes(refs):
    a = load("lenet5").analysis
    for name, shape in refs["book"]["lenet5_shapes"].items():
        assert list(a[name].output_shape) == shape, name


def test_book_resnet34(refs):
    ref = refs["book"]["resnet34_keras"]
    a = load("resnet34").analysis
    assert (a.total_params, a.trainable_params, a.non_trainable_params) == (
        ref["total_params"], ref["trainable_params"], ref["non_trainable_params"],
    )


def test_memory_example(refs):
    ref = refs["book"]["memory_example"]
    net = load("memory_example")
    a = net.analysis
    conv = a["conv_1"]
    assert a.total_params == ref["params"]
    assert a.macs == ref["multiplications"]
    assert conv.output_elements == ref["output_floats_per_instance"]
    assert conv.output_elements * 4 == ref["bytes_per_instance"]
    assert conv.output_elements * 4 * 100 == ref["bytes_batch_100"]
    m = a.memory(batch_size=100)
    # training keeps the input and the output of the layer for every instance
    assert m.training_bytes == (150 * 100 * 3 + 3_000_000) * 4 * 100 + 15_200 * 4


def test_book_alexnet_table():
    a = load("alexnet").analysis
    table = {
        "C1": (55, 55, 96), "S2": (27, 27, 96), "C3": (27, 27, 256), "S4": (13, 13, 256),
        "C5": (13, 13, 384), "C6": (13, 13, 384), "C7": (13, 13, 256), "S8": (6, 6, 256),
        "F9": (4096,), "F10": (4096,), "out": (1000,),
    }
    for name, shape in table.items():
        assert a[name].output_shape == shape, name
    assert sum(i.layer.kind == "lrn" for i in a) == 2


def test_googlenet_inception_depths():
    # Szegedy et al. 2014, table 1: output depth of each inception module
    depths = {"3a": 256, "3b": 480, "4a": 512, "4b": 512, "4c": 512, "4d": 528,
              "4e": 832, "5a": 832, "5b": 1024}
    for spec, prefix in (("googlenet", "inception_"), ("googlenet_torchvision", "inception")):
        net = load(spec)
        concats = {
            layer.calls[0].instance: net.shape(layer.name)[-1]
            for layer in net.layers
            if layer.kind == "concat"
        }
        assert concats == {prefix + k: v for k, v in depths.items()}
        assert net.analysis.outputs[0][1] == (1000,)


def test_unet_parameters_by_hand():
    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    down = [(1, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]
    total = 0
    for cin, cout in down:
        total += conv(3, cin, cout) + conv(3, cout, cout)
    for cout in (512, 256, 128, 64):
        total += conv(2, cout * 2, cout)  # transposed 2x2: in = 2*cout channels
        total += conv(3, cout * 2, cout) + conv(3, cout, cout)
    total += conv(1, 64, 2)
    net = load("unet")
    assert net.analysis.total_params == total
    assert net.analysis.outputs == [("scores", (256, 256, 2))]
    kinds = {layer.kind for layer in net.layers}
    assert {"convtranspose", "concat"} <= kinds


def test_classify_localize_has_two_heads():
    net = load("classify_localize")
    assert net.analysis.outputs == [("class_probs", (10,)), ("box", (4,))]
    assert net["class_probs"].activation == "softmax"
    assert net["box"].activation == "linear"
    assert net["class_probs"].inputs == net["box"].inputs == ("features",)
