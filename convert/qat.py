"""Quantization-aware fine-tuning: teach a trained network the int8 model's rounding.

After post-training quantization a few percent of faces change their top class
between the float and the int8 model, and the rounding of the depthwise outputs
is the largest source. Fine-tuning with that rounding simulated at every tensor
the int8 model stores (fake quantization; gradients pass straight through inside
the range) makes the network robust to it. The weights then go back into the
plain graph, which `edge-convert quantize` converts as usual: the fake
quantization never reaches the device.

Each simulated range is the same robust one `quantize` will pick (a quantile of
per-face extremes on class-balanced training faces), re-measured at every epoch
as the weights move.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

import numpy as np

from convert.errors import InitError
from convert.model import CORE, NORMALISE, ModelSpec, Simulation, build_model, with_input_scaling
from convert.ranges import robust_range
from convert.tf_env import import_keras

PREFIX = "fq_"


class Mode(enum.Enum):
    """What the simulation does; stored in each simulated layer's `active` variable."""

    OFF = 0.0  # the identity: the float network
    ON = 1.0  # every face rounded: the int8 model, simulated
    SECOND_HALF = 2.0  # a paired batch [faces; the same faces]: float first, int8 second


# --- the paired batch: [faces; the same faces] ----------------------------------------


def paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face twice, as SECOND_HALF mode and the consistency loss expect."""
    return np.concatenate([x, x]), np.concatenate([y, y])


def halves(ops: Any, batch: Any) -> tuple[Any, Any]:
    """(first half, second half) of a paired batch (or of any batch, split at n // 2)."""
    n = ops.shape(batch)[0] // 2
    return batch[:n], batch[n:]


def half_weights(ops: Any, active: Any) -> tuple[Any, Any]:
    """How much (0 or 1) each half of the batch is rounded, for a stored `active` Mode.

    The one decoding of the mode: OFF rounds neither half, ON both, SECOND_HALF the
    second only.
    """
    second = ops.minimum(active, Mode.ON.value)
    first = ops.where(active > (Mode.ON.value + Mode.SECOND_HALF.value) / 2, 0.0, active)
    return first, second


@functools.cache
def fake_quant_class() -> Any:
    """The FakeQuant layer, defined once Keras is imported (it is imported lazily)."""
    keras = import_keras()

    @keras.saving.register_keras_serializable(package="edge_emotion")
    class FakeQuant(keras.layers.Layer):
        """Rounds to one int8 tensor's grid: nowhere, everywhere or in the second half."""

        def build(self, input_shape: Any) -> None:
            def constant(name: str, value: float) -> Any:
                return self.add_weight(shape=(), initializer=keras.initializers.Constant(value),
                                       trainable=False, name=name)

            self.low = constant("low", -1.0)
            self.high = constant("high", 1.0)
            self.active = constant("active", 0.0)

        def call(self, x: Any) -> Any:
            ops = keras.ops
            rounded = keras.quantizers.fake_quant_with_min_max_vars(
                x, self.low, self.high, num_bits=8)
            first, second = half_weights(ops, self.active)
            n = ops.shape(x)[0]
            which = ops.where(ops.arange(n) >= n // 2, second, first)
            which = ops.reshape(ops.cast(which, x.dtype), (-1,) + (1,) * (len(x.shape) - 1))
            return x + which * (rounded - x)

    return FakeQuant


@functools.cache
def weight_rounding_classes() -> tuple[Any, Any, Any]:
    """Conv2D, DepthwiseConv2D and Dense whose kernels are rounded like the converter's.

    TFLite stores weights as symmetric per-channel int8 (-127..127). Folding batch
    norm into a convolution scales each output channel, which leaves per-channel
    rounding unchanged, so rounding the unfolded kernel simulates it exactly.
    Gradients pass straight through. The rounding follows the same mode as the
    activations, per half of the batch: the float half keeps float weights.
    """
    keras = import_keras()
    ops = keras.ops

    def rounded(kernel: Any, axis: int) -> Any:
        others = tuple(i for i in range(len(kernel.shape)) if i != axis)
        scale = ops.max(ops.abs(kernel), axis=others, keepdims=True) / 127.0 + 1e-12
        grid = ops.clip(ops.round(kernel / scale), -127.0, 127.0) * scale
        return kernel + ops.stop_gradient(grid - kernel)

    def per_half(layer: Any, inputs: Any, apply: Any, kernel: Any, axis: int) -> Any:
        """apply(x, kernel) on each half of the batch with its mode's kernel."""
        first, second = half_weights(ops, layer.active)
        grid = rounded(kernel, axis)
        floats, rounding = halves(ops, inputs)
        return ops.concatenate([
            apply(floats, kernel + first * (grid - kernel)),
            apply(rounding, kernel + second * (grid - kernel))])

    class Rounded:
        """What the three stand-ins share: a mode variable, saved and loaded without it."""

        def build(self, input_shape: Any) -> None:
            super().build(input_shape)  # type: ignore[misc]
            self.active = self.add_weight(  # type: ignore[attr-defined]
                shape=(), initializer="zeros", trainable=False, name="active")

        def load_own_variables(self, store: Any) -> None:
            # Keras saves a convolution's kernel and bias only: the mode is set afresh anyway.
            for i, variable in enumerate(network_weights(self)):
                variable.assign(store[str(i)])

    @keras.saving.register_keras_serializable(package="edge_emotion")
    class RoundedConv2D(Rounded, keras.layers.Conv2D):
        def convolution_op(self, inputs: Any, kernel: Any) -> Any:
            parent = super().convolution_op
            return per_half(self, inputs, parent, kernel, axis=3)

    @keras.saving.register_keras_serializable(package="edge_emotion")
    class RoundedDepthwiseConv2D(Rounded, keras.layers.DepthwiseConv2D):
        def call(self, inputs: Any) -> Any:
            def depthwise(x: Any, kernel: Any) -> Any:
                return ops.depthwise_conv(x, kernel, strides=self.strides, padding=self.padding,
                                          dilation_rate=self.dilation_rate,
                                          data_format=self.data_format)

            return per_half(self, inputs, depthwise, self.kernel, axis=2)  # (3, 3, C, 1)

    @keras.saving.register_keras_serializable(package="edge_emotion")
    class RoundedDense(Rounded, keras.layers.Dense):
        def call(self, inputs: Any, training: Any = None) -> Any:
            x = per_half(self, inputs, ops.matmul, self.kernel, axis=1)
            return x if self.bias is None else ops.add(x, self.bias)

    return RoundedConv2D, RoundedDepthwiseConv2D, RoundedDense


def register() -> None:
    """Make the simulation's layers known to Keras before a checkpoint with them loads."""
    fake_quant_class()
    weight_rounding_classes()
    consistency_loss_class()


def simulation_parameters(model: Any) -> int:
    """How many of the model's parameters are the simulation's (ranges and modes)."""
    return sum(int(np.prod(w.shape)) for layer in model.get_layer(CORE).layers
               for w in layer.weights if w.name in ("low", "high", "active"))


def quantization_aware_model(spec: ModelSpec) -> Any:
    """The training graph: raw pixels in, probabilities out, int8 rounding simulated."""
    keras = import_keras()
    layer = fake_quant_class()
    conv2d, depthwise_conv2d, dense = weight_rounding_classes()
    core = build_model(spec, Simulation(
        activation=lambda x, name: layer(name=PREFIX + name)(x),
        conv2d=conv2d, depthwise_conv2d=depthwise_conv2d, dense=dense))
    return with_input_scaling(keras, core, spec)


def plain_model(spec: ModelSpec) -> Any:
    return with_input_scaling(import_keras(), build_model(spec), spec)


def network_weights(layer: Any) -> list[Any]:
    """A layer's own weights, without the simulation's mode variable."""
    return [w for w in layer.weights if w.name != "active"]


def _layers(model: Any) -> dict[str, Any]:
    try:
        core = model.get_layer(CORE)
    except ValueError:
        raise InitError(f"not an edge-emotion network (no '{CORE}' inside)") from None
    return {layer.name: layer for layer in core.layers if network_weights(layer)}


def transfer_weights(source: Any, target: Any) -> None:
    """Copy weights by layer name between the plain and the quantization-aware graph.

    A separable convolution `X_sep` of one graph is `X_sep_dw` + `X_sep_pw` in the
    other. Fake-quantization ranges are not weights of the network and are skipped.
    """
    have = _layers(source)
    for name, layer in _layers(target).items():
        if name.startswith(PREFIX):
            continue
        if name.endswith(("_sep_dw", "_sep_pw")) and name not in have:
            whole = have.get(name[:-3])
            weights = ([network_weights(whole)[0 if name.endswith("_dw") else 1]]
                       if whole else None)
        elif name.endswith("_sep") and name not in have:
            halves = [have.get(name + "_dw"), have.get(name + "_pw")]
            weights = ([network_weights(halves[0])[0], network_weights(halves[1])[0]]
                       if all(halves) else None)
        else:
            weights = network_weights(have[name]) if name in have else None
        if weights is None:
            raise InitError(f"layer {name} is missing from the starting model")
        targets = network_weights(layer)
        expected = [tuple(w.shape) for w in targets]
        found = [tuple(w.shape) for w in weights]
        if found != expected:
            raise InitError(f"layer {name} has weights {found} in the starting model, "
                            f"the network built from these options expects {expected} "
                            "(give the --width/--modules/--middle/--stem it was trained with)")
        for target, value in zip(targets, weights, strict=True):
            target.assign(value)


def fake_quant_layers(model: Any) -> list[Any]:
    return [layer for layer in model.get_layer(CORE).layers if layer.name.startswith(PREFIX)]


def set_mode(model: Any, mode: Mode) -> None:
    """The mode of every simulated tensor and weight."""
    for layer in model.get_layer(CORE).layers:
        if hasattr(layer, "active"):
            layer.active.assign(mode.value)


def calibrate(model: Any, pixels: np.ndarray, quantile: float, batch: int = 100,
              mode: Mode = Mode.ON) -> None:
    """Set every simulated range from float activations, as `quantize` will.

    pixels: float32 (N, 48, 48, 1) raw 0..255 faces. Simulation is switched off
    while measuring, so each range sees the float network, then set to `mode`.
    """
    keras = import_keras()
    points = fake_quant_layers(model)
    set_mode(model, Mode.OFF)
    core = model.get_layer(CORE)
    probe = keras.Model(core.inputs, [layer.input for layer in points])
    scaling = model.get_layer(NORMALISE)
    lows, highs = [], []
    for start in range(0, len(pixels), batch):
        inputs = scaling(pixels[start:start + batch])
        outputs = probe(inputs, training=False)
        values = [keras.ops.convert_to_numpy(v).reshape(len(v), -1) for v in outputs]
        lows.append(np.stack([v.min(axis=1) for v in values], axis=1))
        highs.append(np.stack([v.max(axis=1) for v in values], axis=1))
    low, high = robust_range(np.concatenate(lows), np.concatenate(highs), quantile)
    for layer, lo, hi in zip(points, low, high, strict=True):
        layer.low.assign(float(lo))
        layer.high.assign(max(float(hi), float(lo) + 1e-6))
    set_mode(model, mode)


@functools.cache
def consistency_loss_class() -> Any:
    """The loss of `--consistency` runs, a registered class so checkpoints reload."""
    keras = import_keras()
    ops = keras.ops
    eps = 1e-7

    @keras.saving.register_keras_serializable(package="edge_emotion")
    class ConsistencyLoss(keras.losses.Loss):
        """Cross-entropy on both halves plus `weight` x KL(float || int8) on the second.

        The batch is `paired` in SECOND_HALF mode, so each face is seen
        by the float network and by the simulated int8 one; the KL term pulls the two
        together, which is what int8-vs-float agreement measures. Per-face values, so
        Keras still applies the class weights.
        """

        def __init__(self, label_smoothing: float = 0.0, weight: float = 1.0,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.label_smoothing, self.weight = label_smoothing, weight

        def call(self, y_true: Any, y_pred: Any) -> Any:
            cross_entropy = keras.losses.categorical_crossentropy(
                y_true, y_pred, label_smoothing=self.label_smoothing)
            floats, rounded = halves(ops, y_pred)
            divergence = ops.sum(floats * (ops.log(floats + eps) - ops.log(rounded + eps)),
                                 axis=-1)
            return cross_entropy + self.weight * ops.concatenate(
                [ops.zeros_like(divergence), divergence])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "label_smoothing": self.label_smoothing,
                    "weight": self.weight}

    return ConsistencyLoss


def consistency_loss(label_smoothing: float, weight: float) -> Any:
    return consistency_loss_class()(label_smoothing=label_smoothing, weight=weight)


def validation_scores(model: Any, pixels: np.ndarray, labels: np.ndarray,
                      mode_after: Mode) -> dict[str, float]:
    """Accuracy of the simulated int8 and of the float network, and their agreement."""
    set_mode(model, Mode.ON)
    rounded = np.asarray(model.predict(pixels, batch_size=256, verbose=0)).argmax(1)
    set_mode(model, Mode.OFF)
    floats = np.asarray(model.predict(pixels, batch_size=256, verbose=0)).argmax(1)
    set_mode(model, mode_after)
    return {"val_accuracy": float((rounded == labels).mean()),
            "val_float_accuracy": float((floats == labels).mean()),
            "val_agreement": float((rounded == floats).mean())}
