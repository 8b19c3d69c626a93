"""The model contract: what `edge-convert` writes beside a .tflite and the device reads.

One sidecar format, `edge-emotion-model/1`, with the FER2013 labels, the input
normalisation and quantization, the face framing, the inference rule (mirror
averaging) and the provenance (source model, calibration, converter, metrics).
`convert.quantize` builds it, `convert.evaluate` replaces its metrics,
`convert.card` and `edge.classify` read it: all through `Sidecar`, so no other
module knows the JSON layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError

FORMAT = "edge-emotion-model/1"
# FER2013 class names in label order; a sidecar carries its own copy, which the device uses.
FER2013_LABELS: tuple[str, ...] = (
    "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral",
)
INPUT_NOTE = "float input is the raw grayscale pixel 0..255; the network rescales internally"
ALWAYS = 1.0  # a mirror margin no pair of probabilities reaches: every face is mirrored


def needs_mirror(probabilities: np.ndarray, margin: float) -> np.ndarray:
    """Which faces get the mirror pass: those whose top two classes are within `margin`.

    A confident face keeps its class whether or not it is averaged with its mirror
    image; the second invoke only changes the answer near a tie, so it is spent there.
    The same rule runs on the float model in `edge-convert evaluate`.
    """
    if margin >= ALWAYS:
        return np.ones(len(probabilities), dtype=bool)
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    return (top_two[:, 1] - top_two[:, 0]) < margin


def mirror_averaged(first: np.ndarray, faces: np.ndarray, margin: float,
                    predict: Any) -> tuple[np.ndarray, np.ndarray]:
    """`first` with the uncertain faces averaged with predict(their mirror images),
    and which faces those were."""
    redo = needs_mirror(first, margin)
    if not redo.any():
        return first, redo
    out = first.copy()
    out[redo] = 0.5 * (first[redo] + predict(np.ascontiguousarray(faces[redo][:, :, ::-1])))
    return out, redo


def write_json(path: Path, data: dict[str, Any]) -> None:
    """One formatting for every JSON the build writes, so an update changes only what it sets."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and (scale, zero point) of the model's input or output tensor."""

    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None  # None: a float tensor

    @property
    def scale(self) -> float:
        return self.quantization[0] if self.quantization else 1.0

    @property
    def zero_point(self) -> int:
        return self.quantization[1] if self.quantization else 0

    def quantization_dict(self) -> dict[str, Any] | None:
        if self.quantization is None:
            return None
        return {"scale": self.quantization[0], "zero_point": self.quantization[1]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorSpec:
        quant = raw.get("quantization")
        return cls(tuple(int(d) for d in raw["shape"]), str(raw["dtype"]),
                   None if quant is None else (float(quant["scale"]), int(quant["zero_point"])))


@dataclass(frozen=True)
class Sidecar:
    """NAME.json beside NAME.tflite: what the device needs, and where the model came from."""

    labels: tuple[str, ...]
    input: TensorSpec
    output: TensorSpec
    framing: dict[str, float]
    mean: float = 0.0
    std: float = 1.0
    mirror_average: bool = False  # average each face with its mirror image
    mirror_margin: float = ALWAYS  # ... only faces whose top-two probabilities are closer
    # Provenance: written by quantize (None: absent, e.g. a hand-made float model).
    source_model: dict[str, Any] | None = None
    tflite_sha256: str | None = None
    size_bytes: int | None = None
    calibration: dict[str, Any] | None = None
    converter: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # written by evaluate
    # Reference faces (a seed) and their expected outputs: edge.selftest reads the block.
    selftest: dict[str, Any] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        if not path.exists():
            raise ModelError(f"{path}: model sidecar missing (expected beside the .tflite)")
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: sidecar unreadable ({exc})") from None
        found = raw.get("format") if isinstance(raw, dict) else None
        if found != FORMAT:
            raise ModelError(f"{path}: sidecar format {found!r}, this version reads {FORMAT!r} "
                             "(re-run edge-convert quantize)")
        try:
            return cls.from_dict(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{path}: sidecar unreadable or incomplete ({exc!r})") from None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Sidecar:
        norm = raw["input"]["normalisation"]
        inference = raw.get("inference", {})
        return cls(
            labels=tuple(str(label) for label in raw["labels"]),
            input=TensorSpec.from_dict(raw["input"]),
            output=TensorSpec.from_dict(raw["output"]),
            framing={str(k): float(v) for k, v in raw.get("framing", {}).items()},
            mean=float(norm["mean"]),
            std=float(norm["std"]),
            mirror_average=bool(inference.get("mirror_average", False)),
            mirror_margin=float(inference.get("mirror_margin", ALWAYS)),
            source_model=raw.get("source_model"),
            tflite_sha256=raw.get("tflite_sha256"),
            size_bytes=raw.get("size_bytes"),
            calibration=raw.get("calibration"),
            converter=raw.get("converter"),
            metrics=dict(raw.get("metrics", {})),
            selftest=raw.get("selftest"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout, in the order it has always been written."""
        inference: dict[str, Any] = {"mirror_average": self.mirror_average}
        if self.mirror_average and self.mirror_margin < ALWAYS:  # only near-ties: 2nd invoke
            inference["mirror_margin"] = self.mirror_margin
        provenance = {"source_model": self.source_model, "tflite_sha256": self.tflite_sha256,
                      "size_bytes": self.size_bytes, "calibration": self.calibration,
                      "converter": self.converter}
        return {
            "format": FORMAT,
            "labels": list(self.labels),
            "input": {
                "shape": list(self.input.shape),
                "dtype": self.input.dtype,
                "normalisation": {"mean": self.mean, "std": self.std, "note": INPUT_NOTE},
                "quantization": self.input.quantization_dict(),
            },
            "output": {
                "shape": list(self.output.shape),
                "dtype": self.output.dtype,
                "kind": "probabilities",
                "quantization": self.output.quantization_dict(),
            },
            "framing": self.framing,
            "inference": inference,
            **{key: value for key, value in provenance.items() if value is not None},
            "metrics": self.metrics,
            **({"selftest": self.selftest} if self.selftest is not None else {}),
        }

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())

    def with_metrics(self, metrics: dict[str, Any]) -> Sidecar:
        """The same model's sidecar with `metrics` replaced and nothing else."""
        return replace(self, metrics=metrics)
