"""Choose the activation-range quantile of `edge-convert quantize` without PublicTest.

For each candidate quantile, quantize the float model with ranges from that
quantile of the per-face extremes (`convert/ranges.py`), then measure how closely
the int8 model follows the float one on Training faces that were not in the
calibration set: mean |probability difference| and argmax agreement. No labels
are used, and no test split is read. The pick is the lowest mean |difference|,
ties within 1% going to the higher quantile (fewer faces clipped).

    python -m research.range_quantile runs/gpu/w40_base/best.keras \\
        --data ../shared/data/fer2013/train.npz --json docs/range_quantile.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from convert.calibration import calibration_set
from convert.data import load_faces
from convert.evaluate import float_probabilities
from convert.quantize import quantize
from edge.classify import EmotionClassifier

QUANTILES = (0.8, 0.9, 0.95, 0.99, 0.999, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="The float Keras model.")
    parser.add_argument("--data", required=True, help="The training split (.npz or CSV).")
    parser.add_argument("--holdout", type=int, default=2000,
                        help="Training faces outside the calibration set to compare on.")
    parser.add_argument("--calibration-size", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="Write the table here.")
    args = parser.parse_args()

    faces = load_faces(args.data, "train")
    drawn = calibration_set(faces, args.calibration_size, 1234).index
    rest = np.setdiff1d(np.arange(len(faces)), drawn)
    holdout = np.random.default_rng(99).choice(rest, args.holdout, replace=False)
    x = faces.x[holdout]
    floats = float_probabilities(args.model, x)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for q in QUANTILES:
            out = Path(scratch) / f"q{q}.tflite"
            quantize(args.model, faces, out, args.calibration_size, 1234, range_quantile=q)
            int8 = EmotionClassifier(out, threads=2).predict(x)
            rows.append({"quantile": q,
                         "mean_abs_dp": round(float(np.abs(int8 - floats).mean()), 5),
                         "agreement": round(float((int8.argmax(1) == floats.argmax(1)).mean()), 4)})
            print(f"quantile {q:<6g} mean |dp| {rows[-1]['mean_abs_dp']:.5f}  "
                  f"agreement {rows[-1]['agreement']:.4f}", flush=True)
    # Ties within 1% go to the highest quantile: it clips fewest faces.
    floor = min(r["mean_abs_dp"] for r in rows)
    best = max((r for r in rows if r["mean_abs_dp"] <= 1.01 * floor), key=lambda r: r["quantile"])
    print(f"closest to float (ties within 1% to the higher quantile): {best['quantile']:g}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "holdout_faces": args.holdout,
                                         "calibration_size": args.calibration_size,
                                         "rows": rows, "best": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
