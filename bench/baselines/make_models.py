"""Models the baselines need, made with TensorFlow into a scratch folder.

    python -m bench.baselines.make_models OUT_DIR [--int8 models/emotion_int8.tflite]

Writes, and prints as one JSON line:

* `emotion_float32.tflite` + `.json`: our network without quantization (float32
  in and out, the same raw 0..255 input), for "our pipeline, float model". Its
  weights come from the checkpoint the shipped int8 model was quantized from
  (the sidecar's source_model.path) when this machine has it (copied first:
  training may rewrite it; it is never written), else random weights in the
  architecture of docs/training/run.json (timing does not depend on weights).
* `edge_float.keras`: that same float network as Keras (classification alone).
* `original_xception.keras`: an Xception of the original project's size
  (convert.model.build_model with ORIGINAL_SPEC, ~2.9M parameters, random
  weights), for the original project's way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from convert.model import ModelSpec, build_model
from convert.tf_env import quiet_native_output, quiet_tensorflow
from edge.model_contract import Sidecar

REPO = Path(__file__).resolve().parents[2]
INT8_SIDECAR = REPO / "models" / "emotion_int8.json"
# The float checkpoint the shipped int8 model was quantized from, where this machine has it.
CHECKPOINT = REPO / (Sidecar.read(INT8_SIDECAR).source_model or {}).get("path", "-")
RUN_INFO = REPO / "docs" / "training" / "run.json"  # the shipped model's run record
# Roughly the original project's Xception: 2.5M+ parameters on 48x48x1 input.
ORIGINAL_SPEC = ModelSpec(width=64, modules=4, middle=4)
EDGE_FALLBACK_SPEC = ModelSpec(width=32, modules=4, middle=2)


def edge_keras_model(tf: Any, scratch: Path) -> tuple[Any, str]:
    """Our float network: the training checkpoint if readable, else random weights."""
    if CHECKPOINT.exists():
        for attempt in range(3):  # a copy taken mid-save does not load: try again
            copy = scratch / "checkpoint_copy.keras"
            shutil.copyfile(CHECKPOINT, copy)
            try:
                with quiet_native_output():
                    model = tf.keras.models.load_model(copy, compile=False)
                return model, f"{CHECKPOINT.relative_to(REPO)} (copied at {_now()})"
            except Exception:
                time.sleep(2 + attempt)
    from convert.model import with_input_scaling

    spec = EDGE_FALLBACK_SPEC
    if RUN_INFO.exists():
        spec = ModelSpec(**json.loads(RUN_INFO.read_text())["config"]["spec"])
    with quiet_native_output():
        model = with_input_scaling(tf.keras, build_model(spec), spec)
    return model, f"random weights, {spec}"


def float_tflite(tf: Any, model: Any) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)  # no optimisation: float32
    with quiet_native_output():
        return bytes(converter.convert())


def float_sidecar(int8: Sidecar, content: bytes, source: str) -> Sidecar:
    """The shipped sidecar with float32 input/output and no quantization."""
    return replace(int8, input=replace(int8.input, dtype="float32", quantization=None),
                   output=replace(int8.output, dtype="float32", quantization=None),
                   source_model={"path": source},
                   tflite_sha256=hashlib.sha256(content).hexdigest(),
                   size_bytes=len(content), calibration=None)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--int8", type=Path, default=REPO / "models" / "emotion_int8.tflite")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tf = quiet_tensorflow()

    edge, edge_source = edge_keras_model(tf, args.out)
    edge_path = args.out / "edge_float.keras"
    edge.save(edge_path)
    content = float_tflite(tf, edge)
    tflite = args.out / "emotion_float32.tflite"
    tflite.write_bytes(content)
    int8_sidecar = Sidecar.read(args.int8.with_suffix(".json"))
    float_sidecar(int8_sidecar, content, edge_source).write(tflite.with_suffix(".json"))

    with quiet_native_output():
        original = build_model(ORIGINAL_SPEC)
    original_path = args.out / "original_xception.keras"
    original.save(original_path)
    print(json.dumps({
        "float_tflite": str(tflite), "float_tflite_bytes": len(content),
        "edge_keras": str(edge_path), "edge_source": edge_source,
        "edge_params": int(edge.count_params()),
        "original_keras": str(original_path), "original_params": int(original.count_params()),
        "original_spec": ORIGINAL_SPEC.to_dict(), "tensorflow": tf.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
