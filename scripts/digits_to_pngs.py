"""Write scikit-learn's bundled digits as PNG files: a folder of "unlabeled" images to try annotation on.

    python scripts/digits_to_pngs.py OUT [--count N] [--known 0,1,2 --initial K]
    python scripts/digits_to_pngs.py OUT --known 0,1,2 --fill BATCH/answers.csv

The first writes OUT/images/digit_NNNN.png (8x8 grey, no class in the name), OUT/truth.csv (path,class:
the answers a person would give) and, with --known, OUT/initial.csv: K labeled images per known class
(path,class), the start of a project. The second is a scripted annotator: it fills the answer column of a
batch's answers.csv from OUT/truth.csv (a class of --known, else `unknown`).
"""

import argparse
import csv
import os

import numpy as np
from PIL import Image


def write_digits(out, count=None, known=(), initial=2, seed=0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target
    order = np.random.default_rng(seed).permutation(len(labels))[:count]  # shuffled: the file name tells nothing
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    truth = []
    for n, i in enumerate(order):
        name = f"digit_{n:04d}.png"
        Image.fromarray(images[i], mode="L").save(os.path.join(out, "images", name))
        truth.append((name, str(labels[i])))
    with open(os.path.join(out, "truth.csv"), "w", newline="") as f:
        csv.writer(f).writerows([("path", "class")] + truth)
    if known:
        rows = [row for c in known for row in [r for r in truth if r[1] == c][:initial]]
        with open(os.path.join(out, "initial.csv"), "w", newline="") as f:
            csv.writer(f).writerows([("path", "class")] + rows)
    return truth


def fill_answers(truth_csv, sheet, known) -> list:
    """Fill the answer column of `sheet` from the true classes: the class if wanted, else `unknown`."""
    with open(truth_csv, newline="") as f:
        truth = {row["path"]: row["class"] for row in csv.DictReader(f)}
    with open(sheet, newline="") as f:
        reader = csv.DictReader(f)
        columns, rows = reader.fieldnames, list(reader)
    for row in rows:
        row["answer"] = truth[row["path"]] if truth[row["path"]] in known else "unknown"
    with open(sheet, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=None, help="how many images (default all 1797)")
    parser.add_argument("--known", default="", help="wanted classes for initial.csv, comma-separated, e.g. 0,1,2")
    parser.add_argument("--initial", type=int, default=2, help="initial labels per wanted class")
    parser.add_argument("--fill", default=None, help="a batch's answers.csv to fill in from OUT/truth.csv")
    args = parser.parse_args()
    known = [k for k in args.known.split(",") if k]
    if args.fill:
        rows = fill_answers(os.path.join(args.out, "truth.csv"), args.fill, known)
        print(f"{args.fill}: {len(rows)} answers, {sum(r['answer'] != 'unknown' for r in rows)} known")
        return
    truth = write_digits(args.out, args.count, known, args.initial)
    print(f"{len(truth)} images in {os.path.join(args.out, 'images')}; answers in {os.path.join(args.out, 'truth.csv')}"
          + (f"; initial labels in {os.path.join(args.out, 'initial.csv')}" if args.known else ""))


if __name__ == "__main__":
    main()
