"""Write models/MODEL.md from what the run and the evaluation recorded.

Every figure in the card comes from a file a command wrote (run.json and
history.csv from `train`, the JSON report from `evaluate`, the sidecar from
`quantize`), so the card cannot drift from the model it describes.
"""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path
from typing import Any

from edge.model_contract import Sidecar

LIMITS = """\
## Limits and biases

- **FER2013 is posed and web-scraped.** Faces were found by Google image search for
  emotion keywords, so expressions are often exaggerated; spontaneous, subtle
  expressions in a classroom or at a kiosk are recognised less well than the
  PublicTest figure suggests. Human agreement with FER2013 labels is about 65%
  (Goodfellow et al., 2013); FER+ re-annotation agrees with ~63% of its labels.
- **Classes are unbalanced.** Disgust is 1.5% of the training data (436 images) and
  is the weakest class; Fear is confused with Sad and Surprise. Training weights
  classes by the square root of inverse frequency, a compromise between the
  original project's full balancing and none (not ablated here).
- **Demographics are not documented** for FER2013 and were not audited here: expect
  accuracy to differ across age, skin tone, gender presentation and culture
  (expression display rules differ). Do not use the output to make decisions about
  individuals. It estimates the expression shown, not the feeling behind it.
- **48x48 grayscale, frontal.** Profile faces, strong occlusion (masks, hands) and
  very low light degrade results; the device aligns faces on the eyes and frames
  them like FER2013 (see `framing` in the sidecar) to match the training data.
- **Label noise and leakage in the benchmark:** FER2013 has ~1,850 duplicate images,
  57 duplicate groups with conflicting labels, and 280 PublicTest images with exact
  copies in Training; PublicTest accuracy is slightly optimistic for that reason.
  The model was selected on PublicTest (best epoch); PrivateTest was never used.
"""


def _history(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _command(run: dict[str, Any]) -> str:
    words = shlex.split(run["command"])
    words[0] = Path(words[0]).name  # the console script, not this machine's path to it
    return shlex.join(words)


def _schedule(cfg: dict[str, Any]) -> str:
    if cfg["schedule"] == "cosine":
        return f"cosine learning-rate decay over {cfg['epochs']} epochs, "
    # A quantization-aware run validates by accuracy only, so its plateau is of accuracy.
    monitored = "accuracy" if cfg.get("quantization_aware") else "loss"
    return (f"learning rate halved on a {cfg['plateau_patience']}-epoch plateau of "
            f"validation {monitored}, ")


def _per_class_table(report: dict[str, Any]) -> list[str]:
    rows = ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for label, m in report["int8"]["per_class"].items():
        rows.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                    f"{m['support']} |")
    return rows


def lineage(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, run.json) of the run and the runs it fine-tuned from, oldest first.

    A fine-tuning run records `--init` as the checkpoint it started from; that
    checkpoint's folder holds the run that trained it.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    folder: Path | None = run_dir
    while folder is not None and (folder / "run.json").exists() and \
            all(folder.resolve() != f.resolve() for f, _ in chain):
        run = json.loads((folder / "run.json").read_text())
        state_path = folder / "state.json"
        if "epochs_run" not in run and state_path.exists():  # a run stopped before its end
            state = json.loads(state_path.read_text())
            run |= {"epochs_run": state["epoch"], "wall_seconds": state["wall_seconds"]}
        chain.insert(0, (folder, run))
        init = run["config"].get("init")
        folder = Path(init).parent if init else None
    return chain


def _best_epoch(folder: Path) -> int | str:
    history = _history(folder)
    if not history:
        return "?"
    # Keras counts epochs from 0.
    return int(max(history, key=lambda r: float(r["val_accuracy"]))["epoch"]) + 1


def _commands(run: dict[str, Any]) -> list[str]:
    return [_command(run),
            *[f"{_command(r)}  # resumed at epoch {r['from_epoch']}"
              for r in run.get("resumed", [])]]


def _fine_tune_line(folder: Path, run: dict[str, Any]) -> str:
    cfg = run["config"]
    kind = ("Quantization-aware fine-tuning (int8 rounding simulated at every tensor the "
            "int8 model stores and in the weights, ranges re-measured each epoch; "
            "`convert/qat.py`)" if cfg.get("quantization_aware") else "Fine-tuning")
    if cfg.get("consistency"):
        kind += (f" with a KL(float || int8) term of weight {cfg['consistency']:g}, each face "
                 "seen by both networks")
    return (f"- {kind}: from `{cfg['init']}`, {run.get('epochs_run', '?')} of {cfg['epochs']} "
            f"epochs (best by PublicTest accuracy: {_best_epoch(folder)}), Adam lr "
            f"{cfg['learning_rate']:g}, " + _schedule(cfg) + "the same augmentation, "
            f"{run.get('wall_seconds', 0) / 60:.1f} min on {_hardware(run)} "
            f"({_backend(run)}).")


def _selftest_line(sidecar: Sidecar) -> list[str]:
    block = sidecar.selftest
    if not block:
        return []
    return [f"- Start-up self-test (`edge/selftest.py`): {block['count']} synthetic faces "
            f"(seed {block['seed']}) and their outputs from {block['kernels']}; the device "
            f"falls back from XNNPACK to builtin kernels, or stops, when its own outputs differ "
            f"by more than {block['tolerance']['mean']:g} on average or "
            f"{block['tolerance']['max']:g} at most ([docs/ARM64.md](../docs/ARM64.md))."]


def render(run_dir: Path, sidecar_path: Path, report: dict[str, Any], confusion_png: str,
           quantize_command: str, evaluate_command: str, notes: tuple[str, ...] = ()) -> str:
    chain = lineage(run_dir)
    if not chain:
        raise FileNotFoundError(f"{run_dir / 'run.json'} not found")
    base_dir, base = chain[0]
    run = chain[-1][1]
    sidecar = Sidecar.read(sidecar_path)
    calibration = sidecar.calibration or {}
    spec = run["config"]["spec"]
    int8, floats, agree = report["int8"], report["float"], report["agreement"]
    cfg = base["config"]
    widths = ", ".join(str(spec["width"] * 2**i) for i in range(spec["modules"]))
    best = _best_epoch(base_dir)
    lines = [
        f"# Model card: {sidecar_path.stem}",
        "",
        f"`{sidecar_path.with_suffix('.tflite').name}`: full-integer int8 TFLite, "
        f"{report['model']['size_bytes']:,} bytes, SHA-256 `{sidecar.tflite_sha256}`.",
        "",
        "## Architecture",
        "",
        f"Xception-family CNN (`convert/model.py`): 48x48x1 raw pixels, rescaled inside "
        f"the graph to [-1, 1]; a two-conv stem ({spec['stem'] // 2}, {spec['stem']} filters), "
        f"{spec['modules']} downsampling modules of two depthwise-separable convolutions with "
        f"a residual shortcut (widths {widths}), "
        f"{spec['middle']} middle-flow residual blocks at the lowest resolution, global "
        f"average pooling, dropout {spec['dropout']}, a 7-way softmax. "
        f"**{run['parameters']:,} parameters** (the original project's Xception: 17.6M). "
        f"L2 {spec['l2']}.",
        "",
        "## Training",
        "",
        (f"Trained on {_hardware(base)} by this repository's own command:" if len(chain) == 1
         else f"Trained on {_hardware(base)}, then fine-tuned on {_hardware(run)}, by this "
              "repository's own commands:"),
        "",
        "```sh",
        *[line for _, r in chain for line in _commands(r)],
        quantize_command,
        evaluate_command,
        "```",
        "",
        f"- Data: FER2013 Training split ({base['train']['n']:,} images) for training; "
        f"PublicTest ({base['val']['n']:,}) for checkpoint selection and the figures below. "
        f"PrivateTest was not used.",
        f"- Epochs run: {base.get('epochs_run', '?')} of {cfg['epochs']} "
        f"(best epoch by PublicTest accuracy: {best}); "
        f"wall time {base.get('wall_seconds', 0) / 3600:.2f} h on {_hardware(base)} "
        f"({_backend(base)}).",
        f"- Regimen: Adam lr {cfg['learning_rate']}, batch {cfg['batch_size']}, "
        + _schedule(cfg)
        + f"early stopping after {cfg['early_stop_patience']} epochs without a better "
        f"validation accuracy, best checkpoint kept; augmentation: horizontal flip, rotation "
        f"±{cfg['rotation_degrees']:g}°, shift ±{cfg['shift'] * 100:g}%, zoom "
        f"±{cfg['zoom'] * 100:g}%{_erasing(cfg)}; dropout {spec['dropout']}; label smoothing "
        f"{cfg['label_smoothing']:g}; class weights `{cfg['class_weight']}`; seed {cfg['seed']}.",
        *[_fine_tune_line(folder, r) for folder, r in chain[1:]],
        f"- Quantization: {calibration['total']} calibration faces drawn "
        f"class-balanced from the training split (seed {calibration['seed']}); "
        f"activation ranges: {calibration.get('ranges', 'absolute min/max')}; "
        f"equalization: {calibration.get('equalization', 'none')}; "
        "int8 input (raw pixel - 128, exact), int8 output, int8 builtin ops only.",
        *_selftest_line(sidecar),
        "",
        "## Results on PublicTest",
        "",
        f"Measured by `edge-convert evaluate` through the device's own classifier "
        f"(`edge/classify.py`), {report['data']['n']:,} faces"
        + _inference_phrase(report.get("inference", {}))
        + ":",
        "",
        "| | accuracy |",
        "| --- | --- |",
        f"| int8 TFLite (shipped) | **{int8['accuracy'] * 100:.2f}%** |",
    ]
    if floats:
        lines += [f"| float Keras | {floats['accuracy'] * 100:.2f}% |",
                  f"| int8 vs float argmax agreement | {agree['argmax'] * 100:.2f}% |"]
    latency = report["latency_ms"]
    lines += [
        f"| latency per face, 1 thread ({latency['runtime']}, {latency['machine']}) | "
        + (f"{latency['mean']:.3f} ms mean, {latency['median']:.3f} ms median |"
           if "mean" in latency else f"{latency['median']:.3f} ms median |"),
        "",
        "Per class (int8):",
        "",
        *_per_class_table(report),
        "",
        f"![confusion matrix]({confusion_png})",
        "",
        *([*(f"- {note}" for note in notes), ""] if notes else []),
        LIMITS,
    ]
    return "\n".join(lines)


def _inference_phrase(inference: dict[str, Any]) -> str:
    if not inference.get("mirror_average"):
        return ""
    if "mirror_margin" in inference:
        return (f", faces whose top two probabilities differ by less than "
                f"{inference['mirror_margin']:g} averaged with their mirror image "
                f"({inference['mirrored_fraction']:.1%} of them; sidecar `inference`; the float "
                "model by the same rule)")
    return (", each averaged with its mirror image (sidecar `inference.mirror_average`; the "
            "float model likewise)")


def _hardware(run: dict[str, Any]) -> str:
    # A run record without "hardware" was made by TensorFlow on this 2-core machine.
    return str(run.get("hardware", "2 CPU cores (tensorflow)"))


def _backend(run: dict[str, Any]) -> str:
    if "backend" in run:
        return f"Keras {run.get('keras', '?')} on {run['backend']}"
    return f"TensorFlow {run.get('tensorflow', '?')}"


def _erasing(cfg: dict[str, Any]) -> str:
    erase = float(cfg.get("erase", 0.0))
    return f", random erasing p={erase:g}" if erase > 0 else ""
