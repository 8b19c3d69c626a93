"""How closely each int8 conversion follows its float model, without PublicTest.

For each float Keras model given, quantize it (with and without depthwise
equalization) and compare int8 and float on augmented Training faces outside the
calibration set (the faces of research/mirror_margin.py): one-pass argmax agreement
and mean |probability difference|. This is how the shipped model was chosen
among the plain, the quantization-aware and the consistency fine-tuned networks.

    python -m research.int8_fidelity runs/gpu/w40_base/best.keras runs/qat_cw100/best.keras \\
        --data ../shared/data/fer2013/train.npz --json docs/training/int8_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from convert.equalize import DEFAULT_CAP
from convert.evaluate import float_probabilities
from convert.quantize import quantize
from edge.classify import EmotionClassifier
from research.mirror_margin import UNSEEN_LIKE, unseen_like_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="Float Keras models.")
    parser.add_argument("--data", required=True, help="The training split (.npz or CSV).")
    parser.add_argument("--faces", type=int, default=6000)
    parser.add_argument("--json", type=Path, help="Write the table here.")
    args = parser.parse_args()

    faces, x = unseen_like_faces(args.data, args.faces)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            floats = float_probabilities(model, x)
            for cap in (0.0, DEFAULT_CAP):
                out = Path(scratch) / f"m{len(rows)}.tflite"
                quantize(model, faces, out, equalize_cap=cap)
                int8 = EmotionClassifier(out, threads=2, mirror_average=False).predict(x)
                rows.append({"model": str(model), "equalize_cap": cap,
                             "agreement": round(float((int8.argmax(1) == floats.argmax(1))
                                                      .mean()), 4),
                             "mean_abs_dp": round(float(np.abs(int8 - floats).mean()), 5)})
                print(f"{model}  equalize {cap:g}: agreement {rows[-1]['agreement']:.4f}  "
                      f"mean |dp| {rows[-1]['mean_abs_dp']:.5f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"faces": args.faces, "augmentation": vars(UNSEEN_LIKE),
                                         "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
