"""Equalize depthwise output channels before int8 conversion (float output unchanged).

In a separable convolution the depthwise output goes straight into the 1x1
pointwise convolution, with nothing in between, and the int8 model stores it
as one tensor with one scale for all channels. Channels with a small range then
get few int8 steps; these tensors are the noisiest of the whole int8 model.
Scaling depthwise channel c by s_c and the pointwise weights that read it by
1/s_c computes exactly the same function, so each channel can be scaled up to
the tensor's widest range first (cross-layer equalization, Nagel et al. 2019,
applied to activation ranges). The scale is capped: a channel that is nearly
always zero would otherwise get an enormous one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convert.model import CORE, NORMALISE
from convert.ranges import DEFAULT_RANGE_QUANTILE, upper_quantile

DEFAULT_CAP = 8.0


def equalize_separable(keras: Any, model: Any, pixels: np.ndarray, cap: float = DEFAULT_CAP,
                       batch: int = 250) -> int:
    """Rescale every SeparableConv2D of `model` in place; returns how many (0: none ran).

    pixels: float32 (N, 48, 48, 1) raw 0..255 calibration faces.
    """
    try:
        core = model.get_layer(CORE)
        scaling = model.get_layer(NORMALISE)
    except ValueError:
        return 0  # not this repository's network: leave it as it is
    separable = [layer for layer in core.layers
                 if isinstance(layer, keras.layers.SeparableConv2D)]
    if not separable:
        return 0
    probe = keras.Model(core.inputs, [layer.input for layer in separable])
    extremes: list[list[np.ndarray]] = [[] for _ in separable]
    for start in range(0, len(pixels), batch):
        inputs = probe(scaling(pixels[start:start + batch]), training=False)
        for k, (layer, x) in enumerate(zip(separable, inputs, strict=True)):
            depthwise = keras.ops.depthwise_conv(x, layer.depthwise_kernel, strides=1,
                                                 padding="same")
            extremes[k].append(np.abs(keras.ops.convert_to_numpy(depthwise)).max(axis=(1, 2)))
    for layer, found in zip(separable, extremes, strict=True):
        # Each channel's range as convert.ranges measures a tensor's.
        channel_range = upper_quantile(np.concatenate(found), DEFAULT_RANGE_QUANTILE)
        widest = float(channel_range.max())
        if widest <= 0:
            continue
        scale = np.minimum(widest / np.maximum(channel_range, widest / cap), cap)
        depthwise, pointwise, *rest = layer.get_weights()
        layer.set_weights([depthwise * scale[None, None, :, None],
                           pointwise / scale[None, None, :, None], *rest])
    return len(separable)
