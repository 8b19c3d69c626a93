"""convert.explain without TensorFlow: occlusion maths, normalisation, regions, draws."""

from __future__ import annotations

import numpy as np

from convert import explain
from convert.explain_report import draw, stratified

SIDE = explain.SIDE


def corner_detector(faces: np.ndarray) -> np.ndarray:
    """A stand-in model whose class 0 is 'bright top-left 12x12' or 'bright bottom-right'.

    p(class 0) rises with the brighter of the two corner patches; the rest goes to
    class 1. Real enough for occlusion: it looks at exactly known pixels.
    """
    top_left = faces[:, :12, :12].mean(axis=(1, 2))
    bottom_right = faces[:, -12:, -12:].mean(axis=(1, 2))
    p0 = np.maximum(top_left, bottom_right) / 255.0
    return np.stack([p0, 1.0 - p0], axis=1).astype(np.float32)


def face_with_square(corner: str, seed: int = 0) -> np.ndarray:
    face = np.random.default_rng(seed).integers(0, 60, (SIDE, SIDE)).astype(np.uint8)
    if corner == "top_left":
        face[:12, :12] = 250
    else:
        face[-12:, -12:] = 250
    return face


def quadrant_mass(heat: np.ndarray) -> tuple[float, float]:
    positive = np.maximum(heat, 0)
    half = SIDE // 2
    return float(positive[:half, :half].sum()), float(positive[half:, half:].sum())


def test_occlusion_positions_cover_every_pixel() -> None:
    for patch, stride in ((8, 4), (12, 6), (10, 4), (5, 5)):
        covered = np.zeros((SIDE, SIDE), dtype=int)
        for r, c in explain.Occlusion(patch, stride).positions():
            covered[r:r + patch, c:c + patch] += 1
        assert covered.min() >= 1, (patch, stride)


def test_occlusion_map_follows_the_informative_square() -> None:
    faces = np.stack([face_with_square("top_left"), face_with_square("bottom_right")])
    maps = explain.Occlusion(8, 4).maps(corner_detector, faces, np.array([0, 0]))
    assert maps.shape == (2, SIDE, SIDE) and maps.dtype == np.float32
    assert np.isfinite(maps.sum())
    top_left, bottom_right = quadrant_mass(maps[0])
    assert top_left > 0 and bottom_right == 0  # hiding the empty corner changes nothing
    top_left, bottom_right = quadrant_mass(maps[1])
    assert bottom_right > 0 and top_left == 0
    # The peak sits inside the square, not merely in its quadrant.
    r, c = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert r < 12 and c < 12


def test_occlusion_map_of_the_other_class_is_the_mirror_sign() -> None:
    faces = face_with_square("top_left")[None]
    toward = explain.Occlusion(8, 4).maps(corner_detector, faces, np.array([0]))
    against = explain.Occlusion(8, 4).maps(corner_detector, faces, np.array([1]))
    np.testing.assert_allclose(toward, -against, atol=1e-6)


def test_normalised_and_class_means() -> None:
    maps = np.zeros((3, SIDE, SIDE), dtype=np.float32)
    maps[0, 0, 0], maps[1, 5, 5], maps[1, 6, 6] = 4.0, 2.0, -3.0
    unit = explain.normalised(maps)
    assert unit.max() == 1.0 and unit.min() == 0.0 and not unit[2].any()  # flat stays 0
    means = explain.class_means(maps, np.array([0, 0, 2]), classes=3)
    assert means.shape == (3, SIDE, SIDE)
    assert means[0, 0, 0] == 0.5 and means[0, 5, 5] == 0.5 and not means[1].any()


def test_regions_follow_the_framing() -> None:
    masks = explain.regions({"eye_y": 0.395, "eye_distance": 0.364})
    rows = {name: np.flatnonzero(mask.any(axis=1)) for name, mask in masks.items()}
    assert rows["eyes_brows"].max() < rows["mouth"].min()  # eyes above the mouth
    assert not (masks["eyes_brows"] & masks["mouth"]).any()
    assert not (masks["mouth"] & masks["border"]).any()
    lower = explain.regions({"eye_y": 0.45, "eye_distance": 0.364})
    assert np.flatnonzero(lower["eyes_brows"].any(axis=1)).min() > rows["eyes_brows"].min()
    heat = np.zeros((SIDE, SIDE))
    heat[masks["mouth"]] = 1.0
    assert explain.region_shares(heat, masks) == {"eyes_brows": 0.0, "mouth": 1.0,
                                                  "border": 0.0}


def test_correlation() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((4, SIDE, SIDE))
    r = explain.correlation(a, np.concatenate([a[:2], -a[2:3], 2 * a[3:]]))
    np.testing.assert_allclose(r, [1, 1, -1, 1], atol=1e-9)


def test_draws_are_seeded_and_split_correct_from_wrong() -> None:
    y = np.repeat(np.arange(7), 20)
    hits = np.tile(np.arange(20) % 3 == 0, 7)
    index, correct = draw(y, hits, per_class=4, seed=1, classes=7)
    again, _ = draw(y, hits, per_class=4, seed=1, classes=7)
    np.testing.assert_array_equal(index, again)
    assert len(index) == 7 * 8
    assert (hits[index] == correct).all()
    some = stratified(y, 35, seed=1, classes=7)
    assert np.bincount(y[some], minlength=7).tolist() == [5] * 7
    assert len(stratified(y, 0, seed=1, classes=7)) == len(y)
