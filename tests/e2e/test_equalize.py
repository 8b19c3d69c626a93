"""Depthwise channel equalization: the same float function, evener int8 ranges."""

from __future__ import annotations

import numpy as np
import pytest

from convert.model import ModelSpec
from tests.conftest import synthetic_faces

pytestmark = pytest.mark.slow  # builds Keras models

SPEC = ModelSpec(width=8, modules=2, middle=1, stem=8, l2=0.0, dropout=0.0)


def depthwise_ranges(keras: object, model: object, pixels: np.ndarray) -> list[np.ndarray]:
    core = model.get_layer("edge_xception")
    separable = [la for la in core.layers if isinstance(la, keras.layers.SeparableConv2D)]
    inputs = keras.Model(core.inputs, [la.input for la in separable])(
        model.get_layer("normalise")(pixels))
    ranges = [np.abs(np.asarray(keras.ops.depthwise_conv(x, la.depthwise_kernel, 1, "same")))
              .max(axis=(0, 1, 2)) for la, x in zip(separable, inputs, strict=True)]
    return [r[r > 0] for r in ranges]  # a dead channel has no range to even out


def test_equalization_keeps_outputs_and_evens_channels() -> None:
    import keras

    from convert.equalize import equalize_separable
    from convert.qat import plain_model

    model = plain_model(SPEC)
    rng = np.random.default_rng(0)
    core = model.get_layer("edge_xception")
    for layer in core.layers:  # channels of very different size, as trained ones have
        if isinstance(layer, keras.layers.SeparableConv2D):
            depthwise, pointwise = layer.get_weights()
            spread = rng.uniform(0.05, 1.0, depthwise.shape[2])[None, None, :, None]
            layer.set_weights([depthwise * spread, pointwise])
    x, _ = synthetic_faces(6, seed=4)
    pixels = x[..., None].astype(np.float32)
    before = np.asarray(model(pixels))
    spread_before = [r.max() / r.min() for r in depthwise_ranges(keras, model, pixels)]
    assert equalize_separable(keras, model, pixels, cap=8.0) == 6  # 2 x 2 + 1 x 2
    np.testing.assert_allclose(np.asarray(model(pixels)), before, atol=1e-5)
    spread_after = [r.max() / r.min() for r in depthwise_ranges(keras, model, pixels)]
    for after, before in zip(spread_after, spread_before, strict=True):
        # Up to the cap: (widest / narrowest) shrinks by up to 8 (ranges measured as
        # the 0.95 quantile of per-face extremes, here as the maximum: hence 1.5).
        assert after < before and after <= 1.5 * max(1.0, before / 8.0)


def test_equalization_leaves_other_networks_alone() -> None:
    import keras

    from convert.equalize import equalize_separable

    inputs = keras.Input((48, 48, 1))
    other = keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(inputs)))
    assert equalize_separable(keras, other, np.zeros((2, 48, 48, 1), np.float32)) == 0
