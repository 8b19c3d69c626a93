"""Training augmentation: seeded, shape-preserving, and each transform does what it says."""

from __future__ import annotations

import numpy as np

from convert.augment import Augmentation, augment_batch

NONE = Augmentation(shift=0, rotation_degrees=0, zoom=0, flip=False, erase=0)


def faces(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_same_seed_same_batch_and_input_untouched() -> None:
    x = faces()
    before = x.copy()
    aug = Augmentation(erase=0.5)
    a = augment_batch(x, aug, np.random.default_rng([1, 2, 3]))
    b = augment_batch(x, aug, np.random.default_rng([1, 2, 3]))
    c = augment_batch(x, aug, np.random.default_rng([1, 2, 4]))
    assert a.dtype == np.uint8 and a.shape == x.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(x, before)


def test_nothing_enabled_is_identity() -> None:
    x = faces()
    assert np.array_equal(augment_batch(x, NONE, np.random.default_rng(0)), x)


def test_flip_only_mirrors_about_half() -> None:
    x = faces(200)
    out = augment_batch(x, Augmentation(shift=0, rotation_degrees=0, zoom=0, flip=True),
                        np.random.default_rng(0))
    mirrored = np.array([np.array_equal(o, f[:, ::-1]) for o, f in zip(out, x, strict=True)])
    kept = np.array([np.array_equal(o, f) for o, f in zip(out, x, strict=True)])
    assert np.all(mirrored | kept) and 60 < mirrored.sum() < 140


def test_shift_moves_content_by_at_most_the_limit() -> None:
    x = np.zeros((50, 48, 48), np.uint8)
    x[:, 20:28, 20:28] = 255  # a bright square at the centre
    out = augment_batch(x, Augmentation(shift=0.1, rotation_degrees=0, zoom=0, flip=False),
                        np.random.default_rng(0))
    for face in out:
        rows, cols = np.nonzero(face > 127)
        dy, dx = rows.mean() - 23.5, cols.mean() - 23.5
        assert abs(dy) <= 0.1 * 48 + 1 and abs(dx) <= 0.1 * 48 + 1
    assert np.std([np.nonzero(f > 127)[1].mean() for f in out]) > 1  # it does move


def test_erase_paints_one_flat_rectangle() -> None:
    x = faces(64)
    out = augment_batch(x, Augmentation(shift=0, rotation_degrees=0, zoom=0, flip=False,
                                        erase=1.0), np.random.default_rng(0))
    for before, after in zip(x, out, strict=True):
        rows, cols = np.nonzero(before != after)
        if len(rows) == 0:  # the random grey happened to equal every erased pixel
            continue
        box = after[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert np.all(box == box[0, 0])  # one grey level
        assert box.size <= 0.25 * 48 * 48 + 48  # at most a quarter of the face
