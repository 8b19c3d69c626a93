"""Figures of `edge-convert explain`: heat maps over faces, per class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convert.explain import normalised

ALPHA = 0.5


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on build servers
    import matplotlib.pyplot as plt

    return plt


def _overlay(ax: Any, face: np.ndarray, heat: np.ndarray | None) -> None:
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    if heat is not None:
        ax.imshow(heat, cmap="jet", vmin=0, vmax=1, alpha=ALPHA)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(label: str, x: np.ndarray, y: np.ndarray, predicted: np.ndarray,
                 correct: np.ndarray, maps: dict[str, np.ndarray], labels: tuple[str, ...],
                 path: Path, titles: dict[str, str]) -> None:
    """Correct faces on the left, wrong ones on the right: the face, then each map."""
    plt = _pyplot()
    methods = list(maps)
    unit = {m: normalised(v) for m, v in maps.items()}
    groups = [np.flatnonzero(correct), np.flatnonzero(~correct)]
    rows = max(1, *(len(g) for g in groups))
    cols = 1 + len(methods)
    figure, axes = plt.subplots(rows, 2 * cols, figsize=(1.25 * 2 * cols, 1.35 * rows + 0.6),
                                squeeze=False)
    for block, group in enumerate(groups):
        for row in range(rows):
            cells = axes[row, block * cols:(block + 1) * cols]
            if row >= len(group):
                for ax in cells:
                    ax.axis("off")
                continue
            i = group[row]
            _overlay(cells[0], x[i], None)
            cells[0].set_ylabel(f"true {labels[y[i]]}\npred {labels[predicted[i]]}", fontsize=7)
            for ax, method in zip(cells[1:], methods, strict=True):
                _overlay(ax, x[i], unit[method][i])
                if row == 0:
                    ax.set_title(titles.get(method, method).replace(", ", "\n"), fontsize=7)
        axes[0, block * cols].set_title("correct" if block == 0 else "wrong", fontsize=8,
                                        fontweight="bold")
    figure.suptitle(f"{label}: maps for the predicted class", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_means(means: dict[str, np.ndarray], mean_faces: np.ndarray, labels: tuple[str, ...],
               path: Path, titles: dict[str, str], title: str) -> None:
    """One row per method, one column per class: the mean map over the mean face."""
    plt = _pyplot()
    methods = list(means)
    rows = max(1, len(methods))
    figure, axes = plt.subplots(rows, len(labels), figsize=(1.2 * len(labels), 1.3 * rows + 0.5),
                                squeeze=False)
    for r, method in enumerate(methods):
        for c, label in enumerate(labels):
            ax = axes[r, c]  # each panel to its own maximum: the shape is what matters
            _overlay(ax, mean_faces[c], means[method][c] / max(float(means[method][c].max()),
                                                                1e-12))
            if r == 0:
                ax.set_title(label, fontsize=8)
            if c == 0:
                ax.set_ylabel(titles.get(method, method), fontsize=7)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
