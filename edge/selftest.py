"""The model's start-up self-test: do this CPU's kernels compute what the model's author saw?

A kernel bug gives a plausible-looking wrong answer, not a crash: under qemu's `max`
CPU (SVE) XNNPACK says "Sad 100%" where every other CPU says "Neutral 97%", and real
SVE hardware could do the same. So `edge-convert quantize` (or `edge-convert selftest`
for an existing model) records in the sidecar a seed and the int8 outputs LiteRT's
reference kernels give for the faces that seed draws; the device recomputes them once
at start. On a mismatch it retries without the XNNPACK delegate (LiteRT's builtin
kernels) and says so; if those disagree too it refuses to start (exit 2): a wrong
label every frame for months is worse than a service that says why it stopped.

The reference faces are synthetic, drawn from the seed with integer arithmetic only
(no RNG library, no libm), so every platform and numpy version draws the same pixels;
`inputs_sha256` proves it. They are cartoon faces (face oval, eyes, brows, nose,
mouth shapes, shading, noise) rather than FER2013 images, whose licence does not let
us redistribute them, yet they give the network spread, non-saturated outputs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.model_contract import Sidecar, TensorSpec

log = logging.getLogger("edge.selftest")

GENERATOR = "edge.selftest.faces/1"
DEFAULT_SEED = 13
DEFAULT_COUNT = 12
# Probability units. Correct kernel sets round differently, and ~50 int8 layers amplify
# that: on these faces (and on FER2013's) LiteRT's reference, builtin and XNNPACK kernels
# differ by 0.005-0.01 on average and by up to 0.13 on one output. A wrong kernel moves
# whole faces (the SVE bug: "Sad 100%" for "Neutral 97%", ~0.15 on average), so the test
# bounds the mean difference tightly and the single worst one loosely.
DEFAULT_TOLERANCE = {"mean": 0.03, "max": 0.25}
SIDE = 48
MASK64 = (1 << 64) - 1


def _splitmix64(state: int) -> tuple[int, int]:
    """Next (state, value): a tiny, fully specified generator in Python integers."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


class _Draw:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def int(self, low: int, high: int) -> int:
        """Uniform-ish integer in low..high inclusive."""
        self.state, value = _splitmix64(self.state)
        return low + value % (high - low + 1)


def _inside(y: np.ndarray, x: np.ndarray, cy: int, cx: int, ry: int, rx: int) -> np.ndarray:
    """Integer ellipse test (no floating point: identical everywhere)."""
    return (y - cy) ** 2 * rx * rx + (x - cx) ** 2 * ry * ry <= rx * rx * ry * ry


def _face(draw: _Draw, index: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.int64)
    top, bottom = draw.int(20, 120), draw.int(20, 160)
    image = top + (bottom - top) * y // (SIDE - 1)
    cx, cy = 24 + draw.int(-2, 2), 26 + draw.int(-2, 2)
    rx, ry = draw.int(15, 19), draw.int(19, 23)
    skin, shade = draw.int(110, 210), draw.int(-3, 3)
    face = _inside(y, x, cy, cx, ry, rx)
    image = np.where(face, skin + shade * (x - cx) // 2 - (y - cy) // 3, image)
    hair = draw.int(10, 70)
    image = np.where(~face & (y < cy - ry // 2) & (abs(x - cx) <= rx + 2), hair, image)
    eye_y, eye_dx = cy - ry // 4 - draw.int(0, 2), draw.int(7, 9)
    eye_open, pupil = draw.int(1, 4), draw.int(5, 60)
    brow_tilt, brow_dark = draw.int(-2, 2), draw.int(20, 80)  # <0 inner ends down (angry)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        image = np.where(_inside(y, x, eye_y, ex, eye_open, 4), 235, image)  # sclera
        image = np.where(_inside(y, x, eye_y, ex, min(eye_open, 2), 2), pupil, image)
        # Brow: a thick line above the eye, its inner end raised or lowered by the tilt.
        inner = (x - ex) * side <= 0
        rise = np.where(inner, brow_tilt * abs(x - ex) // 3, 0)
        brow = (abs(x - ex) <= 5) & (abs(y - (eye_y - 5 - eye_open // 2 + rise)) <= 1)
        image = np.where(brow, brow_dark, image)
    nose = (abs(x - cx) <= 1) & (y > eye_y + 2) & (y < cy + ry // 4)
    image = np.where(nose, image - 30, image)
    mouth_y, half = cy + ry // 2 - draw.int(0, 2), draw.int(5, 9)
    curve, opened = draw.int(-3, 3), draw.int(0, 4)  # curve > 0 smiles; opened: teeth/O
    bend = curve * ((x - cx) ** 2) // (half * half)
    lips = (abs(x - cx) <= half) & (abs(y - (mouth_y - bend)) <= 1)
    image = np.where(lips, draw.int(30, 90), image)
    if opened > 1:
        image = np.where(_inside(y, x, mouth_y + 1, cx, opened, half // 2 + 1), 20, image)
    # Deterministic per-pixel noise (an integer hash), about +/-12 grey levels.
    h = (x * 73856093) ^ (y * 19349663) ^ ((seed * 131 + index) * 83492791)
    h = (h * 0x2545F491) & 0xFFFFFFFF
    h ^= h >> 15
    image = image + (h % 25) - 12
    return np.clip(image, 0, 255).astype(np.uint8)


def reference_faces(seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT) -> np.ndarray:
    """uint8 (count, 48, 48): the same pixels on every platform for a given seed."""
    draw = _Draw(seed)
    return np.stack([_face(draw, i, seed) for i in range(count)])


def pixels_sha256(faces: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(faces, dtype=np.uint8).tobytes()).hexdigest()


@dataclass(frozen=True)
class Reference:
    """The sidecar's `selftest` block: a seed, and the int8 outputs its faces must give."""

    seed: int
    count: int
    inputs_sha256: str
    expected: np.ndarray  # int (count, classes): raw int8 outputs of the reference kernels
    tolerance: dict[str, float]  # probability units: "mean" and "max" |difference|
    kernels: str  # what computed `expected` (for people reading the sidecar)

    @classmethod
    def from_sidecar(cls, sidecar: Sidecar) -> Reference | None:
        block = sidecar.selftest
        if block is None:
            return None
        try:
            if block["generator"] != GENERATOR:
                raise ValueError(f"unknown generator {block['generator']!r}")
            expected = np.array(block["expected"], dtype=np.int64)
            if expected.ndim != 2 or len(expected) != int(block["count"]):
                raise ValueError("expected is not one output row per face")
            tolerance = {k: float(block.get("tolerance", {}).get(k, v))
                         for k, v in DEFAULT_TOLERANCE.items()}
            return cls(int(block["seed"]), int(block["count"]), str(block["inputs_sha256"]),
                       expected, tolerance, str(block.get("kernels", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"sidecar selftest block unreadable ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return {"generator": GENERATOR, "seed": self.seed, "count": self.count,
                "inputs_sha256": self.inputs_sha256, "tolerance": self.tolerance,
                "kernels": self.kernels, "expected": self.expected.tolist()}

    def faces(self) -> np.ndarray:
        faces = reference_faces(self.seed, self.count)
        if pixels_sha256(faces) != self.inputs_sha256:  # not a kernel problem: say so apart
            raise ModelError(f"self-test faces differ from the recorded ones (seed {self.seed}): "
                             f"{GENERATOR} is not reproducible here")
        return faces


def dequantize(raw: np.ndarray, output: TensorSpec) -> np.ndarray:
    """Raw int8 outputs to probabilities, by the sidecar's output quantization."""
    return (raw.astype(np.float64) - output.zero_point) * output.scale


@dataclass(frozen=True)
class Outcome:
    mean: float  # mean |probability - expected| over the faces and classes
    max: float  # the largest one
    tolerance: dict[str, float]

    @property
    def passed(self) -> bool:
        return self.mean <= self.tolerance["mean"] and self.max <= self.tolerance["max"]

    def __str__(self) -> str:
        return f"mean diff {self.mean:.3f}, max {self.max:.3f}"


def compare(probabilities: np.ndarray, reference: Reference, output: TensorSpec) -> Outcome:
    expected = dequantize(reference.expected, output)
    if probabilities.shape != expected.shape:
        return Outcome(float("inf"), float("inf"), reference.tolerance)
    diff = np.abs(probabilities - expected)
    return Outcome(float(diff.mean()), float(diff.max()), reference.tolerance)


def record(content: bytes, output: TensorSpec, seed: int = DEFAULT_SEED,
           count: int = DEFAULT_COUNT) -> Reference:
    """Expected outputs of a .tflite's bytes with LiteRT's reference kernels (BUILTIN_REF).

    The plain C++ reference kernels are the semantics of the int8 ops; every faster kernel
    set (XNNPACK, optimized builtins) must agree with them within the tolerance. The faster
    kernels of the recording machine are checked too, so a model whose reference cannot be
    met even where it was made is never shipped.
    """
    faces = reference_faces(seed, count)
    expected = _raw_outputs(content, faces, "BUILTIN_REF")
    reference = Reference(seed, count, pixels_sha256(faces), expected,
                          dict(DEFAULT_TOLERANCE), "LiteRT reference kernels (BUILTIN_REF)")
    for resolver in (None, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
        outcome = compare(dequantize(_raw_outputs(content, faces, resolver), output),
                          reference, output)
        if not outcome.passed:
            raise ModelError(f"on this machine {resolver or 'the default'} kernels differ from "
                             f"the reference kernels ({outcome}) on the self-test faces")
    return reference


def _raw_outputs(content: bytes, faces: np.ndarray, resolver: str | None) -> np.ndarray:
    """Raw int8 outputs for uint8 faces (pixel - 128 is the model's int8 input)."""
    from edge.classify import load_interpreter_class, native_stderr_silenced

    interpreter_class, _ = load_interpreter_class()
    kwargs: dict[str, Any] = {}
    if resolver is not None:
        resolver_type = op_resolver_type(interpreter_class)
        if resolver_type is None:
            raise ModelError("this TFLite runtime cannot select its kernels; "
                             "record the self-test with ai-edge-litert")
        kwargs["experimental_op_resolver_type"] = getattr(resolver_type, resolver)
    with native_stderr_silenced():
        interpreter = interpreter_class(model_content=content, **kwargs)
        interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    if inp["dtype"] != np.int8 or (scale, zero) != (1.0, -128):
        raise ModelError("the self-test needs the int8 input contract (pixel - 128)")
    rows = []
    for face in faces:
        interpreter.set_tensor(inp["index"], (face.astype(np.int16) - 128).astype(np.int8)
                               .reshape(1, SIDE, SIDE, 1))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0].astype(np.int64))
    return np.stack(rows)


def op_resolver_type(interpreter_class: Any) -> Any:
    """The runtime's OpResolverType enum (LiteRT, tflite_runtime), or None."""
    import sys

    module = sys.modules.get(interpreter_class.__module__)
    found = getattr(module, "OpResolverType", None)
    if found is None:  # TensorFlow keeps it under tf.lite.experimental
        tf = sys.modules.get("tensorflow")
        found = getattr(getattr(getattr(tf, "lite", None), "experimental", None),
                        "OpResolverType", None)
    return found


def uses_delegate(interpreter: Any) -> bool:
    """Whether a delegate (XNNPACK: the only default one on a CPU) took over nodes."""
    try:
        return any(op.get("op_name") == "DELEGATE" for op in interpreter._get_ops_details())
    except Exception:  # private API: absent in some runtimes
        return False


def verify(classifier: Any) -> str:
    """Run the sidecar's self-test on `classifier`, falling back to builtin kernels.

    Returns a short description of the kernels in use and the result, for `check` and the
    start event; raises ModelError (exit 2, one line) when no kernel set agrees.
    """
    reference = Reference.from_sidecar(classifier.sidecar)
    if reference is None:
        return "no self-test in the sidecar"
    faces = reference.faces()
    output = classifier.sidecar.output
    outcome = compare(classifier.predict_once(faces), reference, output)
    if outcome.passed:
        return f"self-test passed ({outcome})"
    first = classifier.kernels
    log.warning("self-test: %s kernels disagree with the model's reference outputs (%s; "
                "tolerance mean %g, max %g): retrying with LiteRT's builtin kernels",
                first, outcome, reference.tolerance["mean"], reference.tolerance["max"])
    tried = f"{first}: {outcome}"
    if classifier.reopen_without_delegates():
        retry = compare(classifier.predict_once(faces), reference, output)
        if retry.passed:
            log.warning("self-test: using %s kernels (%s): %s computes wrong results on "
                        "this CPU", classifier.kernels, retry, first)
            return f"self-test passed ({retry}) after {tried}"
        tried += f"; {classifier.kernels}: {retry}"
    raise ModelError(f"{classifier.model_path}: model self-test failed, this CPU's kernels "
                     f"compute wrong results ({tried}; tolerance mean "
                     f"{reference.tolerance['mean']:g}, max {reference.tolerance['max']:g})")
