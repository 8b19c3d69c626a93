"""`edge-convert`: train, quantize and evaluate the emotion model (build side)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from convert.data import load_faces
from convert.equalize import DEFAULT_CAP
from convert.errors import EXPECTED, InitError, fail
from convert.model import ModelSpec
from convert.ranges import DEFAULT_RANGE_QUANTILE
from edge.model_contract import ALWAYS

SPLITS = ["train", "publictest", "privatetest", "test"]
HELD_OUT = ("publictest", "privatetest", "test")
SPEC = ModelSpec()  # the network options' defaults
NETWORK_OPTIONS = ("width", "modules", "middle", "stem", "l2", "dropout")


def npz_split(data_path: Path) -> str | None:
    """The split a .npz holds, when its name says so (train.npz, publictest.npz)."""
    stem = data_path.stem.lower()
    return stem if data_path.suffix == ".npz" and stem in SPLITS else None


def evaluation_split(data_path: Path, split: str | None) -> str:
    """A .npz is one split: record the split it holds, not a --split that cannot apply."""
    held = npz_split(data_path)
    if held and split and split != held:
        fail(f"{data_path}: a .npz holds one split ({held}); --split {split} does not apply")
    return held or split or "publictest"


def command_as_typed(ctx: click.Context) -> str:
    """`edge-convert train ...` with the options the user gave, for the model card."""
    words = ["edge-convert", ctx.info_name or "train"]  # not argv[0]: it may be python -m
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not ParameterSource.COMMANDLINE or not param.opts:
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):  # positional: the value alone
            words.append(str(value))
        elif isinstance(param, click.Option) and param.is_flag:
            words.append(param.opts[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def typed_options(ctx: click.Context, names: tuple[str, ...]) -> dict[str, object]:
    """The options among `names` the user gave on the command line, with their values."""
    return {name: ctx.params[name] for name in names
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}


class _Commands(click.Group):
    """Every expected failure (bad data, model, options, missing backend): one line, exit 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EXPECTED as exc:
            fail(str(exc))
        except OSError as exc:  # e.g. --out in a read-only folder
            fail(f"{exc.filename or '?'}: {exc.strerror or exc}")


@click.group(cls=_Commands)
def main() -> None:
    """Train, quantize and evaluate the FER2013 emotion model."""


@main.command()
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="Training data: fer2013.csv, an image-folder root, or a .npz.")
@click.option("--val", "val_path", type=click.Path(path_type=Path),
              help="Select checkpoints on this data instead of a split carved from --data "
                   "(the old way, e.g. PublicTest: its figure is then no test figure).")
@click.option("--val-fraction", default=0.1, show_default=True,
              help="Validation split carved from the training faces, stratified and seeded; "
                   "checkpoints, early stopping and the LR plateau are chosen on it.")
@click.option("--val-seed", default=1234, show_default=True,
              help="Seed of the validation split (apart from --seed).")
@click.option("--test", "test_path", type=click.Path(path_type=Path),
              help="Test data, scored once with the best checkpoint [default: the publictest "
                   "split of --data; for a .npz, publictest.npz beside it].")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Run folder: checkpoints, history.csv, run.json.")
@click.option("--width", default=SPEC.width, show_default=True,
              help="Filters of the first module.")
@click.option("--modules", default=SPEC.modules, show_default=True, help="Downsampling modules.")
@click.option("--middle", default=SPEC.middle, show_default=True, help="Middle-flow blocks.")
@click.option("--stem", default=SPEC.stem, show_default=True, help="Filters of the stem.")
@click.option("--l2", default=SPEC.l2, show_default=True)
@click.option("--dropout", default=SPEC.dropout, show_default=True)
@click.option("--epochs", default=80, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--lr", "learning_rate", default=1e-3, show_default=True)
@click.option("--schedule", type=click.Choice(["plateau", "cosine"]), default="plateau",
              show_default=True)
@click.option("--patience", default=12, show_default=True, help="Early-stopping patience.")
@click.option("--label-smoothing", default=0.0, show_default=True)
@click.option("--class-weight", type=click.Choice(["sqrt", "balanced", "none"]), default="sqrt",
              show_default=True)
@click.option("--shift", default=0.1, show_default=True,
              help="Augmentation: random shift, as a fraction of the side.")
@click.option("--rotation", default=10.0, show_default=True,
              help="Augmentation: random rotation, degrees either way.")
@click.option("--zoom", default=0.1, show_default=True, help="Augmentation: random zoom, +/-.")
@click.option("--erase", default=0.0, show_default=True,
              help="Augmentation: probability of random erasing.")
@click.option("--seed", default=1234, show_default=True)
@click.option("--threads", default=0, show_default=True, help="0: all cores.")
@click.option("--workers", default=2, show_default=True,
              help="Threads preparing augmented batches.")
@click.option("--resume", is_flag=True, help="Continue from the run folder's last checkpoint.")
@click.option("--init", "init_path", type=click.Path(path_type=Path),
              help="Start from this trained model's weights (fine-tuning); its network "
                   "(width, modules, ...) is read from the run.json beside it.")
@click.option("--quantization-aware", is_flag=True,
              help="Simulate the int8 model's rounding while training (use with --init and "
                   "a low --lr); best.keras is still the plain float model.")
@click.option("--consistency", default=0.0, show_default=True,
              help="With --quantization-aware: weight of a KL(float || int8) term that "
                   "trains the float and the simulated int8 network to agree.")
def train(data_path: Path, val_path: Path | None, val_fraction: float, val_seed: int,
          test_path: Path | None, out_dir: Path, width: int, modules: int,
          middle: int, stem: int, l2: float, dropout: float, epochs: int, batch_size: int,
          learning_rate: float, schedule: str, patience: int, label_smoothing: float,
          class_weight: str, shift: float, rotation: float, zoom: float, erase: float, seed: int,
          threads: int, workers: int, resume: bool, init_path: Path | None,
          quantization_aware: bool, consistency: float) -> None:
    """Train the Xception-family network and keep the best checkpoint."""
    from convert.checkpoints import starting_spec
    from convert.split import default_test_path
    from convert.train import TrainConfig
    from convert.train import train as run_training

    if min(width, modules, stem, epochs, batch_size, workers) < 1 or middle < 0:
        fail("--width, --modules, --stem, --epochs, --batch-size and --workers must be >= 1")
    if not (0 <= shift < 0.5 and 0 <= rotation <= 90 and 0 <= zoom < 1 and 0 <= erase <= 1):
        fail("augmentation out of range: --shift 0..0.5, --rotation 0..90, --zoom 0..1, "
             "--erase 0..1")
    if consistency < 0 or (consistency > 0 and not quantization_aware):
        fail("--consistency must be >= 0 and needs --quantization-aware")
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("val_fraction")
    if val_path and given is ParameterSource.COMMANDLINE and val_fraction > 0:
        fail("--val selects on given data: it does not go with --val-fraction")
    if not val_path and not 0 < val_fraction < 1:
        fail(f"--val-fraction must be in (0, 1), is {val_fraction:g} (or give --val)")
    if npz_split(data_path) in HELD_OUT:
        fail(f"{data_path}: train on the training split, not a test split")
    test_path = test_path or default_test_path(data_path)
    train_faces = load_faces(data_path, "train")
    val_faces = load_faces(val_path, "publictest") if val_path else None
    test_faces = load_faces(test_path, "publictest") if test_path else None
    try:
        spec = (starting_spec(init_path, typed_options(ctx, NETWORK_OPTIONS)) if init_path else
                ModelSpec(width=width, modules=modules, middle=middle, stem=stem, l2=l2,
                          dropout=dropout))
        config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             schedule=schedule, early_stop_patience=patience,
                             label_smoothing=label_smoothing, class_weight=class_weight,
                             shift=shift, rotation_degrees=rotation, zoom=zoom, erase=erase,
                             seed=seed, threads=threads, workers=workers,
                             init=str(init_path) if init_path else None,
                             quantization_aware=quantization_aware, consistency=consistency,
                             val_fraction=0.0 if val_path else val_fraction, val_seed=val_seed,
                             spec=spec)
        summary = run_training(train_faces, val_faces, out_dir, config, resume=resume,
                               command=command_as_typed(ctx),
                               verbose=1 if sys.stdout.isatty() else 2, test_faces=test_faces)
    except InitError as exc:
        fail(f"--init {init_path}: {exc}" if str(init_path) not in str(exc) else str(exc))
    val, test = summary["val"], summary.get("test")
    click.echo(f"best val accuracy {summary['best_val_accuracy']:.4f} (selection: "
               + (f"{val['n']} faces carved from the training data" if "carved" in val
                  else f"{val['source']}") + f") after "
               f"{summary['epochs_run']} epochs, {summary['wall_seconds'] / 60:.1f} min: "
               f"{summary['best_model']}")
    if test:
        click.echo(f"test accuracy (float) {test['float_accuracy']:.4f} on {test['n']} faces "
                   f"of {test['source']}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="Training data to calibrate on: fer2013.csv, an image-folder root, or a .npz.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Output models/NAME.tflite; the sidecar NAME.json is written beside it.")
@click.option("--calibration-size", default=1000, show_default=True,
              help="Representative faces, drawn class-balanced from the training split.")
@click.option("--seed", default=1234, show_default=True, help="Seed of the calibration draw.")
@click.option("--framing-json", default=None,
              help="Face framing for the sidecar: a JSON file or inline JSON object "
                   "(replaces the FER2013 framing measured by research/fer_framing.py).")
@click.option("--range-quantile", default=DEFAULT_RANGE_QUANTILE, show_default=True,
              help="Activation ranges: this quantile of the per-face extremes "
                   "(1 = TFLite's absolute min/max).")
@click.option("--equalize-cap", default=DEFAULT_CAP, show_default=True,
              help="Scale depthwise output channels toward the widest, at most this much, "
                   "before converting (exact in float; 0 = off).")
@click.option("--mirror-average", is_flag=True,
              help="Tell the device to average each face with its mirror image (2 invokes).")
@click.option("--mirror-margin", default=ALWAYS, show_default=True,
              help="With --mirror-average: mirror only faces whose top two probabilities "
                   "differ by less than this (1 = every face).")
def quantize(model_path: Path, data_path: Path, out_path: Path, calibration_size: int, seed: int,
             framing_json: str | None, range_quantile: float, equalize_cap: float,
             mirror_average: bool, mirror_margin: float) -> None:
    """Convert a Keras MODEL (.keras, .h5, SavedModel folder) to a full-int8 TFLite model."""
    from convert.quantize import load_framing
    from convert.quantize import quantize as run_quantize

    ctx = click.get_current_context()
    if "mirror_margin" in typed_options(ctx, ("mirror_margin",)) and not (
            mirror_average and 0 < mirror_margin <= 1):
        fail("--mirror-margin must be in (0, 1] and needs --mirror-average")
    if npz_split(data_path) in HELD_OUT:  # test faces must not shape the model, even here
        fail(f"{data_path}: calibrate on training data, not a test split")
    framing = load_framing(framing_json)
    train_faces = load_faces(data_path, "train")
    sidecar = run_quantize(model_path, train_faces, out_path, calibration_size, seed, framing,
                           mirror_average, range_quantile=range_quantile,
                           equalize_cap=equalize_cap, mirror_margin=mirror_margin)
    calibration = sidecar.calibration or {}
    click.echo(f"wrote {out_path} ({sidecar.size_bytes:,} bytes, full int8, input scale "
               f"{sidecar.input.scale:g} zero point {sidecar.input.zero_point}) and "
               f"{out_path.with_suffix('.json')}; calibrated on {calibration['total']} faces "
               f"({calibration['per_class']} per class)")


@main.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="fer2013.csv, an image-folder root, or a .npz (a .npz is one split).")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Split of a CSV or image-folder root [default: publictest; a .npz named "
                   "after its split, e.g. publictest.npz, records that split].")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path),
              help="Float model to compare with (.keras, .h5 or SavedModel folder).")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Write the full report as JSON.")
@click.option("--confusion", "confusion_path", type=click.Path(path_type=Path),
              help="Write the confusion matrix (counts and row-normalised) as PNG.")
@click.option("--latency-faces", default=300, show_default=True,
              help="Single-face invokes timed for the latency median.")
@click.option("--update-sidecar", is_flag=True,
              help="Record the metrics in the model's sidecar (changes nothing else).")
def evaluate(model_path: Path, data_path: Path, split: str | None, keras_path: Path | None,
             report_path: Path | None, confusion_path: Path | None, latency_faces: int,
             update_sidecar: bool) -> None:
    """Score MODEL.tflite through the device's classifier, optionally against the float model."""
    from convert import evaluate as ev
    from edge.model_contract import write_json

    split = evaluation_split(data_path, split)
    faces = load_faces(data_path, split)
    report = ev.evaluate(model_path, faces, split, keras_path, latency_faces)
    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(report_path, report)
    if confusion_path:
        ev.plot_confusion(report, confusion_path)
    sidecar_path = ev.update_sidecar(model_path, report) if update_sidecar else None
    click.echo(ev.format_report(report))
    for label, path in (("report", report_path), ("confusion matrix", confusion_path),
                        ("metrics", sidecar_path)):
        if path:
            click.echo(f"{label}: {path}")


@main.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(path_type=Path))
@click.option("--seed", default=None, type=int,
              help="Seed of the synthetic reference faces.  [default: 13]")
@click.option("--count", default=None, type=int, help="Reference faces.  [default: 12]")
def selftest(model_path: Path, seed: int | None, count: int | None) -> None:
    """Record the device's start-up self-test in MODEL.json (the .tflite is not touched)."""
    from convert.selftest import record_in_sidecar
    from edge import selftest as device_selftest

    block = record_in_sidecar(  # a ModelError is the group's one-line exit 2
        model_path, device_selftest.DEFAULT_SEED if seed is None else seed,
        device_selftest.DEFAULT_COUNT if count is None else count)
    click.echo(f"recorded {block['count']} reference faces (seed {block['seed']}) and their "
               f"outputs ({block['kernels']}) in {model_path.with_suffix('.json')}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="fer2013.csv, an image-folder root, or a .npz (a .npz is one split).")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Split of a CSV or image-folder root [default: publictest].")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the PNG figures, mean_maps.npz and explain.json.")
@click.option("--tflite", "tflite_path", type=click.Path(path_type=Path),
              help="With a .keras MODEL: its int8 model, for occlusion maps side by side.")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path),
              help="With a .tflite MODEL: its float model, for Grad-CAM and float occlusion.")
@click.option("--per-class", default=6, show_default=True,
              help="Sample faces drawn per class, correct and wrong ones each.")
@click.option("--seed", default=1234, show_default=True, help="Seed of the sample draws.")
@click.option("--layer", default="", help="Grad-CAM layer [default: the deepest block "
              "output at least 6x6: m2_add in the shipped 4-module network].")
@click.option("--patch", default=8, show_default=True, help="Occlusion patch side, pixels.")
@click.option("--stride", default=4, show_default=True, help="Occlusion patch step, pixels.")
@click.option("--occlusion-faces", default=0, show_default=True,
              help="Occlusion means over this many faces drawn stratified (0: all).")
def explain(model_path: Path, data_path: Path, split: str | None, out_dir: Path,
            tflite_path: Path | None, keras_path: Path | None, per_class: int, seed: int,
            layer: str, patch: int, stride: int, occlusion_faces: int) -> None:
    """Where MODEL looks: Grad-CAM (float .keras) and occlusion maps (float and int8)."""
    from convert import explain_report as er
    from convert.explain import Occlusion

    is_tflite = model_path.suffix.lower() == ".tflite"
    if not model_path.exists():
        fail(f"{model_path}: no such model file")
    if model_path.suffix.lower() not in (".tflite", ".keras", ".h5", ".hdf5"):
        fail(f"{model_path}: MODEL must be a .keras/.h5 float model or an int8 .tflite")
    if (tflite_path and is_tflite) or (keras_path and not is_tflite):
        fail("--tflite goes with a .keras MODEL, --keras with a .tflite MODEL")
    if not (2 <= patch <= 24 and 1 <= stride <= patch):
        fail(f"--patch must be in 2..24 and --stride in 1..--patch, are {patch} and {stride}")
    if per_class < 0 or occlusion_faces < 0:
        fail("--per-class and --occlusion-faces must be >= 0")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"{out_dir}: --out exists and is not a folder")
    split = evaluation_split(data_path, split)
    settings = er.Settings(per_class=per_class, seed=seed, layer=layer,
                           occlusion=Occlusion(patch, stride), occlusion_faces=occlusion_faces,
                           command=command_as_typed(click.get_current_context()))
    faces = load_faces(data_path, split)  # bad data or models: one line (_Commands)
    loaded = er.load(keras_path if is_tflite else model_path,
                     model_path if is_tflite else tflite_path, settings)
    summary = er.run(loaded, faces, split, out_dir, settings, log=click.echo)
    if summary["models"]["int8_converted_from_float"] is False:
        click.echo("note: the int8 model's sidecar names another float checkpoint as its "
                   "source: the side-by-side maps compare two different models")
    gradcam = summary["methods"]["gradcam"]
    click.echo(f"{len(faces)} faces ({split}), {summary['accuracy_of']} accuracy "
               f"{summary['accuracy']:.4f}; "
               + (f"Grad-CAM at {gradcam['layer']} ({gradcam['layer_side']}x"
                  f"{gradcam['layer_side']})" if gradcam else "no Grad-CAM (needs the float "
                                                              "model: --keras)")
               + f"; wrote {out_dir}/explain.json, mean_maps.png and "
                 f"{len(summary['samples']['images'])} sample grids")


@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="The training run folder (run.json, history.csv).")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The shipped .tflite (its sidecar is read beside it).")
@click.option("--report", "report_path", required=True, type=click.Path(path_type=Path),
              help="The JSON report of `edge-convert evaluate` on PublicTest.")
@click.option("--confusion", default="confusion_publictest.png", show_default=True,
              help="Confusion-matrix image, relative to the card.")
@click.option("--quantize-command", required=True, help="The quantize command as run.")
@click.option("--evaluate-command", required=True, help="The evaluate command as run.")
@click.option("--note", "notes", multiple=True, help="A measured remark for the card.")
@click.option("--explain", "explain_path", type=click.Path(path_type=Path),
              help="explain.json of `edge-convert explain`: link its mean maps from the card.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
def card(run_dir: Path, model_path: Path, report_path: Path, confusion: str,
         quantize_command: str, evaluate_command: str, notes: tuple[str, ...],
         explain_path: Path | None, out_path: Path) -> None:
    """Write the model card (MODEL.md) from the run, the sidecar and the evaluation."""
    import json

    from convert.card import render

    try:
        import os

        report = json.loads(report_path.read_text())
        explain = None
        if explain_path:
            summary = json.loads(explain_path.read_text())
            image = explain_path.parent / summary["means"]["image"]
            explain = (summary, Path(os.path.relpath(image, out_path.parent)).as_posix())
        text = render(run_dir, model_path.with_suffix(".json"), report, confusion,
                      quantize_command, evaluate_command, notes, explain)
    except (OSError, ValueError, KeyError) as exc:
        fail(f"cannot write the card: {exc!r}")
    out_path.write_text(text)
    click.echo(f"wrote {out_path}")


if __name__ == "__main__":
    main()
