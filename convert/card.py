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
"""
SELECTED_ON_PUBLICTEST = ("  The model was selected on PublicTest (best epoch); PrivateTest was "
                          "never used.\n")
SELECTED_ON_VALIDATION = ("  The model was selected on a validation split carved from "
                          "Training; PublicTest\n  was scored only as the test figure; "
                          "PrivateTest was never used.\n")


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


def _carved(run: dict[str, Any]) -> bool:
    """Whether the run selected on a validation split of its own (convert/split.py)."""
    return "carved" in (run.get("val") or {})


def _selected_on(run: dict[str, Any]) -> str:
    return "validation" if _carved(run) else "PublicTest"


def _data_line(base: dict[str, Any]) -> str:
    if not _carved(base):
        return (f"- Data: FER2013 Training split ({base['train']['n']:,} images) for training; "
                f"PublicTest ({base['val']['n']:,}) for checkpoint selection and the figures "
                "below. PrivateTest was not used.")
    carved = base["val"]["carved"]
    test = base.get("test") or {}
    return (f"- Data: FER2013 Training split ({carved['of_n']:,} images): "
            f"{base['train']['n']:,} for training and {base['val']['n']:,} "
            f"({carved['fraction']:g}, stratified by class, seed {carved['seed']}, indices "
            f"sha256 `{carved['indices_sha256'][:16]}`) as the validation split that selects "
            "the checkpoint and stops training: the selection figure. PublicTest "
            + (f"({test['n']:,}) " if test.get("n") else "")
            + "is the test figure below, used for nothing else. PrivateTest was not used.")


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
            f"epochs (best by {_selected_on(run)} accuracy: {_best_epoch(folder)}), Adam lr "
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
           quantize_command: str, evaluate_command: str, notes: tuple[str, ...] = (),
           explain: tuple[dict[str, Any], str] | None = None) -> str:
    """`explain`: explain.json's summary and its mean-map image relative to the card."""
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
        _data_line(base),
        f"- Epochs run: {base.get('epochs_run', '?')} of {cfg['epochs']} "
        f"(best epoch by {_selected_on(base)} accuracy: {best}); "
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
        "## Results on PublicTest" + (" (test figure)" if all(_carved(r) for _, r in chain)
                                      else ""),
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
        *(explain_section(*explain, sidecar) if explain else []),
        LIMITS + (SELECTED_ON_VALIDATION if all(_carved(r) for _, r in chain)
                  else SELECTED_ON_PUBLICTEST),
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


REGION_NAMES = {"eyes_brows": "eyes and brows", "mouth": "mouth",
                "border": "border (hair, ears, background)"}


def explain_section(summary: dict[str, Any], image: str, sidecar: Sidecar | None) -> list[str]:
    """Where the model looks: the per-class mean maps of `edge-convert explain`."""
    methods, means, regions = summary["methods"], summary["means"], summary["regions"]
    occlusion = methods["occlusion"]
    method = "occlusion_int8" if "occlusion_int8" in regions["shares"] else next(
        iter(regions["shares"]))
    shares = regions["shares"][method]
    n = means["faces_occlusion"] if method.startswith("occlusion") else means["faces_gradcam"]
    data = summary["data"]
    lines = [
        "## Where the model looks",
        "",
        f"![mean maps per class]({image})",
        "",
        f"Per-class mean maps of where the model looks, over {n:,} {data['split']} faces"
        + (" (a stratified sample)" if means["subsampled"] else "")
        + f": occlusion sensitivity of the int8 model run through the device's "
        f"classifier (a patch of {occlusion['patch']}x{occlusion['patch']} pixels in the "
        f"face's mean grey slid in {occlusion['stride']}-pixel steps; a pixel's value is the "
        "drop of the true class's probability when it is hidden)"
        + (f", and Grad-CAM of the float model at `{methods['gradcam']['layer']}` "
           f"({methods['gradcam']['layer_side']}x{methods['gradcam']['layer_side']})"
           if methods.get("gradcam") else "")
        + ". Each face's map is scaled to a maximum of 1, averaged per class and laid over "
        "the class's mean face; red is where the evidence for the class lies. "
        f"Share of each class's {method.replace('_', ' ')} map per region (placed by the "
        "sidecar's framing):",
        "",
        "| class | " + " | ".join(REGION_NAMES[r] for r in REGION_NAMES) + " |",
        "| --- |" + " --- |" * len(REGION_NAMES),
        "| *share of the area* | " + " | ".join(
            f"*{regions['area_share'][r]:.0%}*" for r in REGION_NAMES) + " |",
        *(f"| {label} | " + " | ".join(f"{row[r]:.0%}" for r in REGION_NAMES) + " |"
          for label, row in shares.items()),
        "",
        _what_they_show(shares, regions["area_share"]),
        "",
    ]
    if summary.get("command"):
        lines += [f"Drawn by `{summary['command']}`.", ""]
    if methods.get("gradcam") is None:
        source = ((sidecar.source_model or {}) if sidecar else {}).get("path",
                                                                       "the float checkpoint")
        lines += [f"Grad-CAM needs the float checkpoint's gradients (`{source}`), which is not "
                  "in the repository; with it, `edge-convert explain CHECKPOINT.keras --tflite "
                  "models/emotion_int8.tflite --data publictest.npz --out DIR` adds Grad-CAM "
                  "and float occlusion maps beside these, for the same faces.", ""]
    return lines


def _what_they_show(shares: dict[str, dict[str, float]], area: dict[str, float]) -> str:
    """The table in a sentence: each region's evidence against its share of the area."""
    def density(region: str, row: dict[str, float]) -> float:
        return row[region] / area[region] if area[region] > 0 else 0.0

    mean = {r: sum(row[r] for row in shares.values()) / len(shares) for r in REGION_NAMES}
    mouth_most = max(shares, key=lambda label: density("mouth", shares[label]))
    return ("Averaged over the classes: "
            + "; ".join(f"{REGION_NAMES[r]} {mean[r]:.0%} of the evidence on {area[r]:.0%} of "
                        f"the area ({mean[r] / area[r]:.1f}x a uniform map)"
                        for r in REGION_NAMES if area[r] > 0)
            + f". The mouth weighs most for {mouth_most} "
            f"({density('mouth', shares[mouth_most]):.1f}x).")
