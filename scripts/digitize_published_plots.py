"""Read the LfOSA and Random curves off the CIFAR-10 plots the LfOSA authors published (gifs/cifar/*.png of
github.com/ningkp/LfOSA): they published no CIFAR-10 logs, only these plots of the mean over seeds.

    git clone https://github.com/ningkp/LfOSA /tmp/LfOSA
    python scripts/digitize_published_plots.py /tmp/LfOSA > docs/measurements/published/lfosa_authors_plots.csv

How: the axes' tick marks are found in the image (short dark strokes left of the left spine and below
the bottom one) and given the tick values printed beside them (read by eye once, in PLOTS below); each
strategy's markers are the pixels of its pure colour (LfOSA red, Random blue) in a narrow column at each
query's x position; where a column holds more than one group of such pixels (the legend), the group
nearest the curve's neighbouring point is taken, walking from the last query back. A point hidden
under the legend box or under another strategy's markers is left empty rather than guessed. The x axis is the
authors' query index q = 0..9: recall and precision after query q+1, accuracy before it; the CSV puts
them on osal's rounds as scripts/published_curves.py does. Expect about +-0.005 in recall and precision
and +-0.3 points of accuracy from the pixels.
"""

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# (file, mismatch, setting, metric, first y tick, y tick step): ticks as printed on each plot
PLOTS = [
    ("cifar10_resnet18_init1_known2_recall.png", 0.2, "", "recall_incl_initial", 0.0, 0.2),
    ("cifar10_resnet18_init1_known2_precision.png", 0.2, "", "precision", 0.0, 0.2),
    ("cifar10_resnet18_init1_known2_accuracy.png", 0.2, "", "test_accuracy", 75.0, 5.0),
    ("cifar10_resnet18_init6_known3_recall.png", 0.3, "al.init_percent=6", "recall_incl_initial", 0.1, 0.1),
    ("cifar10_resnet18_init6_known3_precision.png", 0.3, "al.init_percent=6", "precision", 0.2, 0.2),
    ("cifar10_resnet18_init6_known3_accuracy.png", 0.3, "al.init_percent=6", "test_accuracy", 77.5, 2.5),
    ("cifar10_resnet18_init1_known4_recall.png", 0.4, "", "recall_incl_initial", 0.1, 0.1),
    ("cifar10_resnet18_init1_known4_precision.png", 0.4, "", "precision", 0.2, 0.2),
    ("cifar10_resnet18_init1_known4_accuracy.png", 0.4, "", "test_accuracy", 60.0, 5.0),
    ("cifar10_resnet18_init1_known5_recall.png", 0.5, "", "recall_incl_initial", 0.1, 0.1),
    ("cifar10_resnet18_init1_known5_precision.png", 0.5, "", "precision", 0.2, 0.2),
    ("cifar10_resnet18_init1_known5_accuracy.png", 0.5, "", "test_accuracy", 50.0, 10.0),
]
# the legend boxes (x from, x to, y from, y to, in pixels of the 640x480 image), read by eye: their entries
# repeat the strategies' colours, and points under them are washed out (hidden)
LEGENDS = {
    "cifar10_resnet18_init1_known2_recall.png": (92, 318, 6, 262),
    "cifar10_resnet18_init1_known2_precision.png": (408, 638, 6, 262),
    "cifar10_resnet18_init1_known2_accuracy.png": (410, 636, 148, 404),
}
COLOURS = {"lfosa": (255, 0, 0), "random": (0, 0, 255)}  # matplotlib's "r" and "b"
COLUMNS = ["dataset", "mismatch", "setting", "strategy", "seed", "round", "recall_incl_initial", "precision",
           "test_accuracy", "source"]


def spines(dark: np.ndarray):
    """(left, right, top, bottom) pixel of the axes' frame: its long dark columns and rows."""
    columns = np.flatnonzero(dark.sum(axis=0) > 0.6 * dark.shape[0])
    rows = np.flatnonzero(dark.sum(axis=1) > 0.6 * dark.shape[1])
    return int(columns.min()), int(columns.max()), int(rows.min()), int(rows.max())


def ticks(dark: np.ndarray, frame):
    """(y pixels of the left axis' ticks, bottom first; x pixels of the bottom axis' ticks, left first)."""
    left, right, top, bottom = frame
    y = [r for r in range(top, bottom + 1) if dark[r, left - 4:left].all()]
    x = [c for c in range(left, right + 1) if dark[bottom + 1:bottom + 5, c].all()]
    return sorted(y, reverse=True), sorted(x)


def groups(values: np.ndarray) -> list:
    """Runs of consecutive pixel rows, as their centres."""
    if len(values) == 0:
        return []
    splits = np.flatnonzero(np.diff(values) > 3) + 1
    return [float(part.mean()) for part in np.split(values, splits)]


def read_curve(image: np.ndarray, colour, x_of, y_of, legend=None) -> list:
    """The curve's value at query 0..9 (None where hidden), from the last query back."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    target = np.array(colour)
    mask = (np.abs(r - target[0]) < 40) & (np.abs(g - target[1]) < 40) & (np.abs(b - target[2]) < 40)
    if legend is not None:
        x0, x1, y0, y1 = legend
        mask[y0:y1 + 1, x0:x1 + 1] = False
    values, previous = [None] * 10, None
    for q in range(9, -1, -1):
        column = int(round(x_of(q)))
        rows = np.flatnonzero(mask[:, column - 2:column + 3].any(axis=1))
        centres = groups(rows)
        if not centres:
            continue  # hidden (under the legend, or under other markers)
        centre = centres[0] if previous is None and len(centres) == 1 else \
            min(centres, key=lambda c: abs(c - (previous if previous is not None else max(centres))))
        previous = centre
        values[q] = y_of(centre)
    return values


def digitize(path: Path, first: float, step: float) -> dict:
    image = np.asarray(Image.open(path).convert("RGB"))
    dark = image.sum(axis=2) < 150
    y_ticks, x_ticks = ticks(dark, spines(dark))
    # x ticks are at queries 0, 2, 4, 6, 8
    x_of = lambda q: x_ticks[0] + q * (x_ticks[-1] - x_ticks[0]) / 8.0  # noqa: E731
    y_step = (y_ticks[0] - y_ticks[-1]) / (len(y_ticks) - 1)
    y_of = lambda pixel: first + (y_ticks[0] - pixel) / y_step * step  # noqa: E731
    return {strategy: read_curve(image, colour, x_of, y_of, LEGENDS.get(path.name)) for strategy, colour
            in COLOURS.items()}


def main(argv) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "gifs" / "cifar").is_dir():
        print("usage: python scripts/digitize_published_plots.py <a clone of github.com/ningkp/LfOSA>",
              file=sys.stderr)
        return 2
    rows = {}
    for name, mismatch, setting, metric, first, step in PLOTS:
        curves = digitize(Path(argv[0]) / "gifs" / "cifar" / name, first, step)
        for strategy, values in curves.items():
            for q, value in enumerate(values):
                if value is None:
                    continue
                # accuracy at q was measured before query q+1 (round q); recall and precision after it
                r = q if metric == "test_accuracy" else q + 1
                row = rows.setdefault((mismatch, setting, strategy, r), {
                    "dataset": "cifar10", "mismatch": mismatch, "setting": setting, "strategy": strategy,
                    "seed": "", "round": r, "recall_incl_initial": "", "precision": "", "test_accuracy": "",
                    "source": f"gifs/cifar/{name.rsplit('_', 1)[0]}_*.png (mean of seeds, digitized)"})
                row[metric] = f"{value / 100 if metric == 'test_accuracy' else value:.4f}"
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[key] for key in sorted(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
