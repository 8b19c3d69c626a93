"""Quantization-aware training graph: same network, int8 rounding simulated.

The weights must move between the plain and the training graph without changing
a single output, and the simulated rounding must really put each tensor on an
int8 grid once calibrated: otherwise fine-tuning "quantization-aware" would
train against nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from convert.model import ModelSpec
from tests.conftest import synthetic_faces

pytestmark = pytest.mark.slow  # builds Keras models

SPEC = ModelSpec(width=8, modules=2, middle=1, stem=8, l2=0.0, dropout=0.0)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    x, _ = synthetic_faces(6, seed=3)
    return x[..., None].astype(np.float32)


@pytest.fixture(scope="module")
def plain() -> object:
    from convert.qat import plain_model

    model = plain_model(SPEC)
    rng = np.random.default_rng(0)
    # Batch-norm statistics away from (0, 1), so a mix-up of layers would show.
    for layer in model.get_layer("edge_xception").layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 2, gamma.shape),
                               rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape),
                               var * rng.uniform(0.5, 2, var.shape)])
    return model


def predict(model: object, pixels: np.ndarray) -> np.ndarray:
    return np.asarray(model(pixels, training=False))


def test_weights_round_trip_without_changing_outputs(plain: object, pixels: np.ndarray) -> None:
    from convert.qat import (
        fake_quant_layers,
        plain_model,
        quantization_aware_model,
        transfer_weights,
    )

    trainable = quantization_aware_model(SPEC)
    transfer_weights(plain, trainable)
    assert fake_quant_layers(trainable), "no simulated int8 tensor in the training graph"
    # Not yet calibrated: simulation is off, so the graphs compute the same function.
    np.testing.assert_allclose(predict(trainable, pixels), predict(plain, pixels), atol=1e-5)
    back = plain_model(SPEC)
    transfer_weights(trainable, back)
    np.testing.assert_allclose(predict(back, pixels), predict(plain, pixels), atol=1e-6)
    names = {layer.name for layer in back.get_layer("edge_xception").layers}
    assert not any(name.startswith("fq_") for name in names)


def test_calibrated_tensors_sit_on_an_int8_grid(plain: object, pixels: np.ndarray) -> None:
    import keras

    from convert.qat import calibrate, fake_quant_layers, quantization_aware_model, transfer_weights

    trainable = quantization_aware_model(SPEC)
    transfer_weights(plain, trainable)
    calibrate(trainable, pixels, quantile=0.95)
    points = fake_quant_layers(trainable)
    assert all(float(p.active) == 1.0 for p in points)
    assert all(float(p.low) <= 0.0 < float(p.high) for p in points)
    core = trainable.get_layer("edge_xception")
    outputs = keras.Model(core.inputs, [p.output for p in points])(
        trainable.get_layer("normalise")(pixels))
    for point, value in zip(points, outputs, strict=True):
        levels = np.unique(np.asarray(value))
        assert len(levels) <= 256, point.name
        step = (float(point.high) - float(point.low)) / 255
        assert np.allclose(np.diff(levels) / step, np.rint(np.diff(levels) / step), atol=1e-2), \
            point.name
    # Rounding changes the outputs a little, not the function.
    simulated, reference = predict(trainable, pixels), predict(plain, pixels)
    assert not np.allclose(simulated, reference, atol=1e-6)
    assert np.abs(simulated - reference).mean() < 0.05


def test_mismatched_start_names_the_layer(plain: object) -> None:
    from convert.errors import InitError
    from convert.qat import quantization_aware_model, transfer_weights

    wider = quantization_aware_model(ModelSpec(width=16, modules=2, middle=1, stem=8))
    with pytest.raises(InitError, match="--width"):
        transfer_weights(plain, wider)
    deeper = quantization_aware_model(ModelSpec(width=8, modules=2, middle=2, stem=8))
    with pytest.raises(InitError, match="missing from the starting model"):
        transfer_weights(plain, deeper)


def test_second_half_mode_gives_float_then_int8(plain: object, pixels: np.ndarray) -> None:
    """Consistency training sees each face twice in one batch: float, then int8."""
    from convert import qat

    trainable = qat.quantization_aware_model(SPEC)
    qat.transfer_weights(plain, trainable)
    qat.calibrate(trainable, pixels, quantile=0.95, mode=qat.Mode.SECOND_HALF)
    both = predict(trainable, qat.paired(pixels, np.arange(len(pixels)))[0])
    qat.set_mode(trainable, qat.Mode.ON)
    rounded = predict(trainable, pixels)
    np.testing.assert_allclose(both[:len(pixels)], predict(plain, pixels), atol=1e-5)
    np.testing.assert_allclose(both[len(pixels):], rounded, atol=1e-5)


def test_paired_batch_and_its_halves() -> None:
    """The batch layout the mode, the rounded layers and the loss share."""
    import keras

    from convert import qat

    x, y = np.arange(6.0).reshape(3, 2), np.array([4, 5, 6])
    doubled, labels = qat.paired(x, y)
    first, second = qat.halves(keras.ops, doubled)
    np.testing.assert_array_equal(np.asarray(first), x)
    np.testing.assert_array_equal(np.asarray(second), x)
    assert labels.tolist() == [4, 5, 6, 4, 5, 6]
    weights = {mode: tuple(float(w) for w in qat.half_weights(keras.ops, mode.value))
               for mode in qat.Mode}
    assert weights == {qat.Mode.OFF: (0.0, 0.0), qat.Mode.ON: (1.0, 1.0),
                       qat.Mode.SECOND_HALF: (0.0, 1.0)}


def test_consistency_loss_adds_kl_on_the_second_half() -> None:
    from convert.qat import consistency_loss

    y = np.eye(7, dtype=np.float32)[[0, 1, 0, 1]]
    same = np.full((4, 7), 1 / 7, np.float32)
    plain = np.asarray(consistency_loss(0.0, 1.0).call(y, same))  # per face
    np.testing.assert_allclose(plain, np.log(7), rtol=1e-5)  # halves agree: no KL
    shifted = same.copy()
    shifted[2:] = np.float32([0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    loss = np.asarray(consistency_loss(0.0, 2.0).call(y, shifted))
    kl = (same[0] * np.log(same[0] / shifted[2])).sum()
    ce = -np.log(shifted[2:, [0, 1]].diagonal())
    np.testing.assert_allclose(loss[2:], ce + 2.0 * kl, rtol=1e-4)
    np.testing.assert_allclose(loss[:2], np.log(7), rtol=1e-5)


def test_weights_are_rounded_per_channel_like_the_converter() -> None:
    """Symmetric per-output-channel int8 (-127..127), as TFLite stores kernels."""
    from convert.qat import weight_rounding_classes

    _, _, dense_class = weight_rounding_classes()
    layer = dense_class(3, use_bias=False)
    layer.build((None, 4))
    kernel = np.float32([[0.5, -0.01, 2.0], [0.25, 0.003, -1.0],
                         [-0.125, 0.02, 0.7], [0.3, -0.0171, 0.01]])
    layer.kernel.assign(kernel)
    inputs = np.eye(4, dtype=np.float32)  # rows of the output are the kernel's rows
    np.testing.assert_allclose(np.asarray(layer(inputs)), kernel, atol=1e-7)  # OFF
    layer.active.assign(1.0)
    scale = np.abs(kernel).max(axis=0) / 127
    expected = np.clip(np.rint(kernel / scale), -127, 127) * scale
    np.testing.assert_allclose(np.asarray(layer(inputs)), expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(expected, kernel, atol=1e-5)
