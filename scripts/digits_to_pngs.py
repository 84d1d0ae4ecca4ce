"""Write scikit-learn's bundled digits as PNG files: a folder of "unlabeled" images to try annotation on.

    python scripts/digits_to_pngs.py OUT [--count N] [--known 0,1,2 --initial K]

writes OUT/images/digit_NNNN.png (8x8 grey, no class in the name), OUT/truth.csv (path,class: the answers a
person would give, for a scripted annotator) and, with --known, OUT/initial.csv: K labeled images per
known class (path,class), the start of a project.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=None, help="how many images (default all 1797)")
    parser.add_argument("--known", default="", help="wanted classes for initial.csv, comma-separated, e.g. 0,1,2")
    parser.add_argument("--initial", type=int, default=2, help="initial labels per wanted class")
    args = parser.parse_args()
    truth = write_digits(args.out, args.count, [k for k in args.known.split(",") if k], args.initial)
    print(f"{len(truth)} images in {os.path.join(args.out, 'images')}; answers in {os.path.join(args.out, 'truth.csv')}"
          + (f"; initial labels in {os.path.join(args.out, 'initial.csv')}" if args.known else ""))


if __name__ == "__main__":
    main()
