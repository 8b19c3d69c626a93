"""Xception-family CNN for 48x48x1 faces.

Depthwise-separable convolutions with residual shortcuts, as in the original
project's Xception, sized by two knobs so one code path builds the small edge
model and larger ones: `width` (filters of the first module, doubled each module)
and `modules` (number of downsampling modules); `middle` adds Xception
"middle flow" blocks at the lowest resolution, where they are cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from convert.tf_env import import_keras

# Layer names other modules look up: the network inside the wrapper, and the wrapper's
# input rescaling (qat and equalize probe the network below it).
CORE = "edge_xception"
NORMALISE = "normalise"


@dataclass(frozen=True)
class ModelSpec:
    width: int = 32
    modules: int = 4
    middle: int = 2
    stem: int = 16
    l2: float = 1e-4
    dropout: float = 0.3
    classes: int = 7
    input_size: int = 48

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Simulation:
    """How the quantization-aware graph simulates int8 (built by `convert.qat`).

    `activation(x, name)` wraps each tensor the int8 model stores; the layer
    classes stand in for Keras' and round their weights as the converter will.
    """

    activation: Callable[[Any, str], Any]
    conv2d: Any
    depthwise_conv2d: Any
    dense: Any


def build_model(spec: ModelSpec, simulate: Simulation | None = None) -> Any:
    """The network; with `simulate`, the quantization-aware training graph.

    The training graph simulates int8 at each tensor the converted model stores
    in int8 (after BN folding and ReLU fusion) and in each weight, and splits
    each separable convolution in two because its depthwise output is such a
    tensor (the noisiest one). `convert.qat` moves weights between the graphs.
    """
    keras = import_keras()
    layers = keras.layers
    reg = keras.regularizers.l2(spec.l2) if spec.l2 > 0 else None
    conv2d = simulate.conv2d if simulate else layers.Conv2D
    dense = simulate.dense if simulate else layers.Dense

    def quant(x, name):
        return simulate.activation(x, name) if simulate else x

    def conv_bn(x, filters, kernel=3, strides=1, name=""):
        x = conv2d(filters, kernel, strides=strides, padding="same", use_bias=False,
                   kernel_regularizer=reg, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return quant(layers.ReLU(name=f"{name}_relu")(x), f"{name}_relu")

    def sep_bn(x, filters, name, relu_follows=False):
        if simulate:
            x = simulate.depthwise_conv2d(3, padding="same", use_bias=False,
                                          depthwise_regularizer=reg, name=f"{name}_sep_dw")(x)
            x = quant(x, f"{name}_sep_dw")
            x = conv2d(filters, 1, use_bias=False, kernel_regularizer=reg,
                       name=f"{name}_sep_pw")(x)
        else:
            x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                       depthwise_regularizer=reg, pointwise_regularizer=reg,
                                       name=f"{name}_sep")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        # A ReLU right after is fused into the convolution: only its output is int8.
        return x if relu_follows else quant(x, f"{name}_bn")

    inputs = keras.Input((spec.input_size, spec.input_size, 1), name="face")
    x = conv_bn(inputs, spec.stem // 2, name="stem1")
    x = conv_bn(x, spec.stem, name="stem2")

    filters = spec.width
    for m in range(spec.modules):
        # Shortcut: pool first, then 1x1 conv. A strided 1x1 conv is equivalent
        # here but crashes TF 2.20/2.21's oneDNN backward pass.
        shortcut = layers.MaxPooling2D(2, padding="same", name=f"m{m}_short_pool")(x)
        shortcut = conv2d(filters, 1, use_bias=False, kernel_regularizer=reg,
                          name=f"m{m}_short_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"m{m}_short_bn")(shortcut)
        shortcut = quant(shortcut, f"m{m}_short_bn")
        y = sep_bn(x, filters, f"m{m}_a", relu_follows=True)
        y = quant(layers.ReLU(name=f"m{m}_a_relu")(y), f"m{m}_a_relu")
        y = sep_bn(y, filters, f"m{m}_b")
        y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"m{m}_pool")(y)
        x = quant(layers.Add(name=f"m{m}_add")([y, shortcut]), f"m{m}_add")
        if m < spec.modules - 1:
            filters *= 2

    for b in range(spec.middle):
        y = x
        for k in range(2):
            y = quant(layers.ReLU(name=f"mid{b}_{k}_relu")(y), f"mid{b}_{k}_relu")
            y = sep_bn(y, filters, f"mid{b}_{k}", relu_follows=k == 0)
        x = layers.Add(name=f"mid{b}_add")([x, y])
        if b < spec.middle - 1:  # the last Add is fused with the head's ReLU
            x = quant(x, f"mid{b}_add")

    x = quant(layers.ReLU(name="head_relu")(x), "head_relu")
    x = quant(layers.GlobalAveragePooling2D(name="gap")(x), "gap")
    if spec.dropout > 0:
        x = layers.Dropout(spec.dropout, name="dropout")(x)
    x = quant(dense(spec.classes, kernel_regularizer=reg, name="logits")(x), "logits")
    outputs = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name=CORE)


def with_input_scaling(keras: Any, core: Any, spec: ModelSpec) -> Any:
    """Wrap the network so it takes raw 0..255 pixels.

    Scaling inside the graph means the int8 input quantization is exactly
    (scale 1, zero point -128): the device feeds `pixel - 128`, with no float
    maths and no way for the two sides to normalise differently.
    """
    inputs = keras.Input((spec.input_size, spec.input_size, 1), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=NORMALISE)(inputs)
    return keras.Model(inputs, core(x), name="edge_emotion")
