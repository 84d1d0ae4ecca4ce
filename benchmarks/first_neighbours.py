"""FINCH's approximate first neighbours (EOAL's clustering above `exact_neighbours_up_to` candidates): time and
how often they are the exact ones.

    python benchmarks/first_neighbours.py [--points 100000 1000000] [--data grouped gaussian] [--faiss]
                                          [--probes 6 3] [--leaf 256]

Each row: the tree of k-means cells osal uses (`osal.clustering.approximate_first_neighbours`) on N unit rows
of 64-d synthetic features; its neighbour of 2,000 sampled points against their exact first neighbour (a
2,000 x N product): recall (the very same neighbour) and the mean of found / exact cosine similarity.
"grouped" draws 1,000 Gaussian groups (unit-variance centres, spread 0.5), "gaussian" one blob, the hardest
case for any index. --faiss adds the faiss inverted file osal used before (about 4 sqrt(N) lists, 16
probed) where faiss is installed.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe  # noqa: E402
from osal import clustering  # noqa: E402

SAMPLED = 2000  # points whose exact neighbour is computed


def synthetic_unit_rows(points: int, data: str, rng: np.random.Generator, dim: int = 64) -> np.ndarray:
    rows = rng.standard_normal((points, dim), dtype=np.float32)
    if data == "grouped":
        rows *= 0.5
        rows += rng.standard_normal((1000, dim), dtype=np.float32)[rng.integers(0, 1000, points)]
    return clustering.unit_rows(rows)


def faiss_inverted_file(unit: np.ndarray, probes: int = 16) -> np.ndarray:
    """The index osal used before the tree: faiss IVF-flat, about 4 sqrt(N) lists on a seeded sample."""
    import faiss
    n, dim = unit.shape
    lists = max(1, min(int(4 * np.sqrt(n)), n // 39))
    sample = unit[np.sort(np.random.default_rng(0).choice(n, size=min(n, 64 * lists), replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample))
    index.add(unit)
    index.nprobe = probes
    _, found = index.search(unit, 2)
    return np.where(found[:, 0] == np.arange(n), found[:, 1], found[:, 0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", choices=["grouped", "gaussian"], default=["grouped", "gaussian"])
    parser.add_argument("--faiss", action="store_true", help="also faiss's inverted file, where it is installed")
    parser.add_argument("--probes", type=int, nargs="+", default=list(clustering.PROBES),
                        help="the tree's cells searched per point, top level first")
    parser.add_argument("--leaf", type=int, default=clustering.LEAF, help="points a leaf cell of the tree holds")
    args = parser.parse_args(argv)
    print(f"machine: {describe()}")
    print(f"64-d unit rows; tree: probes {tuple(args.probes)}, leaves of {args.leaf}; recall and similarity ratio "
          f"over {SAMPLED:,} sampled points")
    print(f"{'data':<10}{'points':>12}  {'method':<14}{'seconds':>9}{'recall':>8}{'found / exact':>15}")
    methods = [("k-means tree", lambda unit: clustering.approximate_first_neighbours(unit, args.probes, args.leaf))]
    if args.faiss:
        methods.append(("faiss IVF", faiss_inverted_file))
    for data in args.data:
        for points in args.points:
            rng = np.random.default_rng(1)
            unit = synthetic_unit_rows(points, data, rng)
            sampled = np.sort(rng.choice(points, size=min(SAMPLED, points), replace=False))
            exact = clustering.exact_first_neighbours(unit, sampled)
            exact_similarity = np.einsum("ij,ij->i", unit[sampled], unit[exact])
            for name, method in methods:
                start = time.perf_counter()
                try:
                    found = method(unit)
                except ImportError:
                    print(f"{data:<10}{points:>12,}  {name:<14}  (not installed)")
                    continue
                seconds = time.perf_counter() - start
                similarity = np.einsum("ij,ij->i", unit[sampled], unit[found[sampled]])
                print(f"{data:<10}{points:>12,}  {name:<14}{seconds:>9.1f}{np.mean(found[sampled] == exact):>8.3f}"
                      f"{np.mean(similarity / exact_similarity):>15.4f}", flush=True)
            del unit


if __name__ == "__main__":
    main()
