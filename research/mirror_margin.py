"""Choose `quantize --mirror-margin` without PublicTest: how many faces need the mirror pass.

Averaging a face with its mirror image steadies the answer, but only near a tie
between the top two classes can it change it. For each candidate margin, only
faces whose first-pass top two probabilities are closer than that get the second
invoke, on the int8 model and on the float model alike (`edge.classify`'s rule);
this reports the share of faces mirrored and the int8-vs-float argmax agreement.
The faces are Training faces outside the calibration set, augmented more
strongly than in training so that they are about as uncertain as unseen faces.
The pick is the smallest margin whose agreement is within 0.1 point of mirroring
every face. No labels are used and no test split is read.

    python -m research.mirror_margin runs/qat/best.keras models/emotion_int8.tflite \\
        --data ../shared/data/fer2013/train.npz --json docs/training/mirror_margin.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from convert.augment import Augmentation, augment_batch
from convert.calibration import calibration_set
from convert.data import FaceSet, load_faces
from convert.evaluate import float_probabilities
from edge.classify import EmotionClassifier
from edge.model_contract import ALWAYS, needs_mirror

MARGINS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, ALWAYS)
UNSEEN_LIKE = Augmentation(shift=0.15, rotation_degrees=15.0, zoom=0.15)
TOLERANCE = 0.001  # agreement this close to mirroring every face counts as the same


def unseen_like_faces(data: str, count: int) -> tuple[FaceSet, np.ndarray]:
    """The training split, and `count` of its faces outside the calibration set,
    augmented to be about as uncertain as unseen faces (uint8, N x 48 x 48)."""
    faces = load_faces(data, "train")
    drawn = calibration_set(faces, 1000, 1234).index
    rest = np.setdiff1d(np.arange(len(faces)), drawn)
    picked = np.random.default_rng(11).choice(rest, count, replace=False)
    return faces, augment_batch(faces.x[picked], UNSEEN_LIKE, np.random.default_rng(5))


def gated(first: np.ndarray, mirrored: np.ndarray, margin: float) -> tuple[np.ndarray, float]:
    redo = needs_mirror(first, margin)
    return np.where(redo[:, None], 0.5 * (first + mirrored), first), float(redo.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("keras", type=Path, help="The float Keras model.")
    parser.add_argument("tflite", type=Path, help="Its int8 model.")
    parser.add_argument("--data", required=True, help="The training split (.npz or CSV).")
    parser.add_argument("--faces", type=int, default=6000)
    parser.add_argument("--json", type=Path, help="Write the table here.")
    args = parser.parse_args()

    _, x = unseen_like_faces(args.data, args.faces)
    flipped = np.ascontiguousarray(x[:, :, ::-1])
    float_first = float_probabilities(args.keras, x)
    float_mirror = float_probabilities(args.keras, flipped)
    single = EmotionClassifier(args.tflite, threads=2, mirror_average=False)
    int8_first, int8_mirror = single.predict(x), single.predict(flipped)
    rows = []
    for margin in MARGINS:
        int8, share = gated(int8_first, int8_mirror, margin)
        floats, _ = gated(float_first, float_mirror, margin)
        rows.append({"margin": margin, "mirrored": round(share, 4),
                     "agreement": round(float((int8.argmax(1) == floats.argmax(1)).mean()), 4),
                     "mean_abs_dp": round(float(np.abs(int8 - floats).mean()), 5)})
        print(f"margin {margin:<5g} mirrored {share:6.1%}  agreement "
              f"{rows[-1]['agreement']:.4f}  mean |dp| {rows[-1]['mean_abs_dp']:.5f}", flush=True)
    single_pass = float((int8_first.argmax(1) == float_first.argmax(1)).mean())
    every = rows[-1]["agreement"]
    pick = min((r for r in rows if r["agreement"] >= every - TOLERANCE), key=lambda r: r["margin"])
    print(f"one pass: agreement {single_pass:.4f}; smallest margin within "
          f"{TOLERANCE * 100:g} point of mirroring every face: {pick['margin']:g}")
    if args.json:
        args.json.write_text(json.dumps({
            "keras": str(args.keras), "tflite": str(args.tflite), "faces": args.faces,
            "augmentation": vars(UNSEEN_LIKE), "single_pass_agreement": round(single_pass, 4),
            "rows": rows, "pick": pick,
            "rule": f"smallest margin whose agreement is within {TOLERANCE * 100:g} point of "
                    "mirroring every face"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
