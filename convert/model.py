"""Xception-family CNN for 48x48x1 faces.

Depthwise-separable convolutions with residual shortcuts, as in the original
project's Xception, sized by two knobs so one code path builds the small edge
model and larger ones: `width` (filters of the first module, doubled each module)
and `modules` (number of downsampling modules); `middle` adds Xception
"middle flow" blocks at the lowest resolution, where they are cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from convert.tf_env import import_keras


@dataclass(frozen=True)
class ModelSpec:
    width: int = 32
    modules: int = 3
    middle: int = 2
    stem: int = 16
    l2: float = 1e-4
    dropout: float = 0.3
    classes: int = 7
    input_size: int = 48

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(spec: ModelSpec) -> Any:
    keras = import_keras()
    layers = keras.layers
    reg = keras.regularizers.l2(spec.l2) if spec.l2 > 0 else None

    def conv_bn(x, filters, kernel=3, strides=1, name=""):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def sep_bn(x, filters, name):
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                   depthwise_regularizer=reg, pointwise_regularizer=reg,
                                   name=f"{name}_sep")(x)
        return layers.BatchNormalization(name=f"{name}_bn")(x)

    inputs = keras.Input((spec.input_size, spec.input_size, 1), name="face")
    x = conv_bn(inputs, spec.stem // 2, name="stem1")
    x = conv_bn(x, spec.stem, name="stem2")

    filters = spec.width
    for m in range(spec.modules):
        # Shortcut: pool first, then 1x1 conv. A strided 1x1 conv is equivalent
        # here but crashes TF 2.20/2.21's oneDNN backward pass.
        shortcut = layers.MaxPooling2D(2, padding="same", name=f"m{m}_short_pool")(x)
        shortcut = layers.Conv2D(filters, 1, use_bias=False, kernel_regularizer=reg,
                                 name=f"m{m}_short_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"m{m}_short_bn")(shortcut)
        y = sep_bn(x, filters, f"m{m}_a")
        y = layers.ReLU(name=f"m{m}_a_relu")(y)
        y = sep_bn(y, filters, f"m{m}_b")
        y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"m{m}_pool")(y)
        x = layers.Add(name=f"m{m}_add")([y, shortcut])
        if m < spec.modules - 1:
            filters *= 2

    for b in range(spec.middle):
        y = x
        for k in range(2):
            y = layers.ReLU(name=f"mid{b}_{k}_relu")(y)
            y = sep_bn(y, filters, f"mid{b}_{k}")
        x = layers.Add(name=f"mid{b}_add")([x, y])

    x = layers.ReLU(name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if spec.dropout > 0:
        x = layers.Dropout(spec.dropout, name="dropout")(x)
    x = layers.Dense(spec.classes, kernel_regularizer=reg, name="logits")(x)
    outputs = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="edge_xception")
