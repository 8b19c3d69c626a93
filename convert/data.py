"""FER2013 in the three forms people have it: Kaggle CSV, image folders, .npz.

Every reader returns a `FaceSet` of uint8 (N, 48, 48) images and int labels
0..6 in FER2013 order. Malformed input raises `DataError` naming the file and,
for the CSV, the row, so the CLI can print one line and exit.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.errors import DataError
from edge.errors import first_line
from edge.model_contract import FER2013_LABELS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}
SIDE = 48
INPUT_SHAPE = (1, SIDE, SIDE, 1)  # the model's: one raw-pixel grayscale face
# Kaggle CSV `Usage` values per split name used by our CLI; "test" is the popular
# image-folder copy's test set (PublicTest + PrivateTest).
CSV_USAGE = {"train": ("Training",), "publictest": ("PublicTest",),
             "privatetest": ("PrivateTest",), "test": ("PublicTest", "PrivateTest")}
# Image-folder split directories and the file-name prefixes that separate
# PublicTest from PrivateTest inside the popular `test/` folder.
FOLDER_SPLIT = {"train": ("train", ""), "publictest": ("test", "PublicTest"),
                "privatetest": ("test", "PrivateTest"), "test": ("test", "")}


@dataclass(frozen=True)
class FaceSet:
    x: np.ndarray  # uint8 (N, 48, 48)
    y: np.ndarray  # int64 (N,)
    source: str

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self, classes: int = len(FER2013_LABELS)) -> np.ndarray:
        return np.bincount(self.y, minlength=classes)


def load_faces(path: str | Path, split: str = "train") -> FaceSet:
    """Read a split from a .npz file, a Kaggle CSV, or an image-folder root."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _load_folders(path, split)
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix == ".csv":
        return _load_csv(path, split)
    raise DataError(f"{path}: not a .npz, .csv or image folder")


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    bad = np.flatnonzero((y < 0) | (y >= len(FER2013_LABELS)))
    if len(bad):
        raise DataError(f"{where}: unknown label {int(y[bad[0]])} at index {int(bad[0])}")
    return y.astype(np.int64)


def _load_npz(path: Path) -> FaceSet:
    # A .npz is a zip archive; anything else (a CSV renamed, a bare .npy) would reach
    # numpy's pickle fallback, whose message suggests the unsafe allow_pickle=True.
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid .npz (a NumPy zip archive with arrays x and y)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z.files or "y" not in z.files:
                raise DataError(f"{path}: needs arrays 'x' and 'y', has {sorted(z.files)}")
            x, y = z["x"], z["y"]
    except DataError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # object arrays: never unpickled here
            raise DataError(f"{path}: holds Python objects, not plain number arrays") from None
        raise DataError(f"{path}: not a valid .npz ({first_line(exc)})") from None
    except Exception as exc:  # zipfile errors for a corrupt archive
        raise DataError(f"{path}: not a valid .npz ({first_line(exc)})") from None
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{path}: 'x' must be (N, 48, 48), is {x.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{path}: no images")
    return FaceSet(_pixels(x, f"{path}: 'x'"),
                   _check_labels(_whole_numbers(np.asarray(y), f"{path}: 'y'"), str(path)),
                   str(path))


def _whole_numbers(a: np.ndarray, where: str) -> np.ndarray:
    """`a` as int64 if it holds whole numbers (any int or float dtype), else DataError."""
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind != "f":
        raise DataError(f"{where} is {a.dtype}, expected whole numbers")
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
        raise DataError(f"{where} holds values that are not whole numbers ({a.dtype})")
    return a.astype(np.int64)


def _pixels(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 pixels, refusing what a cast would silently mangle (the models expect 0..255)."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f" and np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1 \
            and np.any(x != np.round(x)):
        raise DataError(f"{where} is {x.dtype} scaled to [0, 1]; FER2013 pixels are 0..255: "
                        "save np.rint(x * 255).astype(np.uint8)")
    values = _whole_numbers(x, where)
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{where} has values outside 0..255 "
                        f"({int(values.min())}..{int(values.max())})")
    return values.astype(np.uint8)


def _load_csv(path: Path, split: str) -> FaceSet:
    # An unknown split must not select every row: Training would mix into a test.
    if split not in CSV_USAGE:
        raise DataError(f"{path}: unknown split {split!r} (one of {', '.join(CSV_USAGE)})")
    try:
        return _read_csv(path, split, CSV_USAGE[split])
    except (UnicodeDecodeError, csv.Error) as exc:  # a binary or mangled file
        raise DataError(f"{path}: not a readable CSV ({exc})") from None


def _read_csv(path: Path, split: str, usage: tuple[str, ...]) -> FaceSet:
    images: list[np.ndarray] = []
    labels: list[int] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or "pixels" not in header or "emotion" not in header:
            raise DataError(f"{path}: header must have 'emotion' and 'pixels' columns")
        col_label, col_pixels = header.index("emotion"), header.index("pixels")
        # Without a Usage column the whole file is one split, like a .npz.
        col_usage = header.index("Usage") if "Usage" in header else None
        for row_number, row in enumerate(reader, start=2):  # 1-based, header is row 1
            if not row:
                continue
            where = f"{path}:{row_number}"
            if len(row) < len(header):
                raise DataError(f"{where}: {len(row)} columns, expected {len(header)}")
            if col_usage is not None and row[col_usage] not in usage:
                continue
            try:
                label = int(row[col_label])
            except ValueError:
                raise DataError(f"{where}: label {row[col_label]!r} is not a number") from None
            if not 0 <= label < len(FER2013_LABELS):
                raise DataError(f"{where}: unknown label {label}")
            try:
                pixels = np.array(row[col_pixels].split(), dtype=np.int64)
            except ValueError:
                raise DataError(f"{where}: pixels are not integers") from None
            if pixels.size != SIDE * SIDE:
                raise DataError(f"{where}: {pixels.size} pixels, expected {SIDE * SIDE}")
            if pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{where}: pixel values outside 0..255")
            images.append(pixels.astype(np.uint8).reshape(SIDE, SIDE))
            labels.append(label)
    if not images:
        raise DataError(f"{path}: no rows for split {split!r} (Usage {' or '.join(usage)})")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), str(path))


def _class_dir_label(name: str) -> int | None:
    """Map a class folder name ('3', 'happy', 'Happy') to its FER2013 index."""
    if name.isdigit():
        return int(name)
    lowered = [label.lower() for label in FER2013_LABELS]
    return lowered.index(name.lower()) if name.lower() in lowered else None


def _load_folders(root: Path, split: str) -> FaceSet:
    import cv2

    folder_name, prefix = FOLDER_SPLIT.get(split, (split, ""))
    split_dir = root / folder_name
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: no such folder")
    images: list[np.ndarray] = []
    labels: list[int] = []
    class_dirs = sorted(d for d in split_dir.iterdir() if d.is_dir())
    if not class_dirs:
        raise DataError(f"{split_dir}: no class folders")
    for class_dir in class_dirs:
        label = _class_dir_label(class_dir.name)
        if label is None or not 0 <= label < len(FER2013_LABELS):
            raise DataError(f"{class_dir}: unknown label folder {class_dir.name!r}")
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{class_dir}: empty class folder")
        for file in files:
            if prefix and not file.name.startswith(prefix):
                continue
            image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DataError(f"{file}: unreadable image")
            if image.shape != (SIDE, SIDE):
                image = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            images.append(image)
            labels.append(label)
    if not images:
        raise DataError(f"{split_dir}: no images for split {split!r}")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), str(split_dir))


def class_weights(counts: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights, normalised to a mean of 1 over the samples.

    'balanced' is n / (k * count), the original project's choice; 'sqrt' is its
    square root, which still lifts Disgust (1.5% of the data) without trading away
    as much accuracy on the frequent classes; 'none' is all ones.
    """
    counts = np.maximum(counts.astype(np.float64), 1.0)
    if mode == "none":
        weights = np.ones_like(counts)
    elif mode in ("balanced", "sqrt"):
        weights = counts.sum() / (len(counts) * counts)
        if mode == "sqrt":
            weights = np.sqrt(weights)
    else:
        raise ValueError(f"class weight mode {mode!r} is not none, sqrt or balanced")
    return weights / (weights * counts).sum() * counts.sum()
