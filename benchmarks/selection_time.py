"""Selection time of every strategy on synthetic pool outputs (the paper's Table 1 analogue).

    python benchmarks/selection_time.py [--pool 50000 ...] [--known 20] [--budget 1500] [--repeats 3]

Several --pool sizes print one column each (growth with the pool: e.g. --pool 10000 100000 1000000).

Inference is not timed here (it is the same forward pass for every strategy but BALD's
extra dropout samples, which it also reduces to one score per example, batch by batch);
metrics.csv records both parts of every real query.
"""

import argparse
import os
import sys
import time

import numpy as np
from hydra.utils import instantiate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe  # noqa: E402
from osal.strategies.base import PoolOutputs  # noqa: E402

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf")


def synthetic_outputs(pool: int, known: int, columns: int, labeled: int, feature_dim: int, mc_samples: int,
                      seed: int = 0) -> PoolOutputs:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, known, labeled)
    labeled_logits = rng.normal(0, 1, (labeled, known)).astype(np.float32)
    labeled_logits[np.arange(labeled), targets] += 4.0
    return PoolOutputs(
        indices=np.arange(pool), num_known=known,
        logits=rng.normal(0, 2, (pool, columns)).astype(np.float32),
        features=rng.normal(0, 1, (pool, feature_dim)).astype(np.float32),
        mc_probabilities=rng.dirichlet(np.ones(known), size=(mc_samples, pool)).astype(np.float32)
        if mc_samples else None,
        mc_scores=rng.random(pool),  # BALD's per-example score, reduced batch by batch during inference
        labeled_features=rng.normal(0, 1, (labeled, feature_dim)).astype(np.float32),
        labeled_logits=labeled_logits, labeled_targets=targets)


def strategy_names():
    return sorted(f[:-5] for f in os.listdir(os.path.join(CONF, "strategy")) if f.endswith(".yaml"))


def load_strategy(name):
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base="1.3"):
        return instantiate(compose("train", overrides=[f"strategy={name}"]).strategy.selector)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, nargs="+", default=[50_000])
    parser.add_argument("--known", type=int, default=20, help="K (CIFAR-100 at mismatch 0.2)")
    parser.add_argument("--labeled", type=int, default=4_000)
    parser.add_argument("--feature-dim", type=int, default=512)
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategies", nargs="*", default=None)
    parser.add_argument("--max-gb", type=float, default=4.0, help="skip inputs larger than this (BALD's samples)")
    args = parser.parse_args(argv)
    print(f"machine: {describe()}")
    print(f"pool {' / '.join(map(str, args.pool))}, K = {args.known}, labeled {args.labeled}, "
          f"features {args.feature_dim}-d, budget {args.budget}; seconds, best of {args.repeats}")
    print(f"{'strategy':<22}{'query model':>12}" + "".join(f"{p:>12}" for p in args.pool))
    for name in args.strategies or strategy_names():
        strategy = load_strategy(name)
        columns = 2 if name == "lfosa_dichotomy" else args.known + (strategy.query_model == "detector")
        cells = []
        for pool in args.pool:
            # a strategy that reads whole MC samples holds T x pool x K of them (float64 draws, then float32)
            mc_bytes = strategy.mc_samples * pool * args.known * 8 if "mc_probabilities" in strategy.needs else 0
            if mc_bytes > args.max_gb * 1e9:
                cells.append(f"{'>' + format(args.max_gb, 'g') + ' GB':>12}")  # MC samples would not fit
                continue
            outputs = synthetic_outputs(pool, args.known, columns, args.labeled, args.feature_dim,
                                        strategy.mc_samples if mc_bytes else 0)
            best = float("inf")
            for repeat in range(args.repeats):
                start = time.perf_counter()
                strategy.select(outputs, args.budget, np.random.default_rng(repeat))
                best = min(best, time.perf_counter() - start)
            cells.append(f"{best:>12.3f}")
            del outputs
        print(f"{name:<22}{strategy.query_model:>12}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
