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
from typing import Iterable, Optional

import numpy as np
from hydra.utils import instantiate

sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import describe  # noqa: E402
from osal.strategies.base import PoolOutputs  # noqa: E402

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf")


def synthetic_outputs(pool: int, known: int, columns: int, labeled: int, feature_dim: int, mc_samples: int,
                      seed: int = 0, needs: Optional[Iterable[str]] = None) -> PoolOutputs:
    """Random outputs of a pool; only the arrays in `needs` (all without it), so that 10 million rows hold
    only what the strategy reads."""
    rng = np.random.default_rng(seed)
    needs = set(needs) if needs is not None else {"logits", "features", "mc_probabilities", "mc_scores",
                                                  "labeled_features", "labeled_logits", "classifier_logits",
                                                  "invalid_features"}
    targets = rng.integers(0, known, labeled)
    labeled_logits = rng.normal(0, 1, (labeled, known)).astype(np.float32)
    labeled_logits[np.arange(labeled), targets] += 4.0

    def normal(rows: int, width: int, scale: float = 1.0) -> np.ndarray:
        # float32 draws: a float64 draw of 10 million x 100 logits would alone take 8 GB
        values = rng.standard_normal((rows, width), dtype=np.float32)
        values *= scale
        return values

    return PoolOutputs(
        indices=np.arange(pool), num_known=known,
        logits=normal(pool, columns, 2.0) if "logits" in needs else None,
        features=normal(pool, feature_dim) if "features" in needs else None,
        mc_probabilities=rng.dirichlet(np.ones(known), size=(mc_samples, pool)).astype(np.float32)
        if mc_samples and "mc_probabilities" in needs else None,
        mc_scores=rng.random(pool) if "mc_scores" in needs else None,  # BALD's score, reduced during inference
        labeled_features=normal(labeled, feature_dim), labeled_logits=labeled_logits, labeled_targets=targets,
        classifier_logits=normal(pool, known, 2.0) if "classifier_logits" in needs else None,
        invalid_features=normal(labeled // 2, feature_dim, 1.5) if "invalid_features" in needs else None)


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB; NaN where /proc has neither."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return float("nan")


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux: `5` to clear_refs), so a peak belongs to one selection."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


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
    parser.add_argument("--memory", action="store_true", help="also the selection's peak memory above the outputs "
                        "it reads (MB; Linux /proc)")
    args = parser.parse_args(argv)
    print(f"machine: {describe()}")
    print(f"pool {' / '.join(map(str, args.pool))}, K = {args.known}, labeled {args.labeled}, "
          f"features {args.feature_dim}-d, budget {args.budget}; seconds, best of {args.repeats}")
    width = 21 if args.memory else 12
    print(f"{'strategy':<22}{'query model':>12}" + "".join(f"{p:>{width}}" for p in args.pool)
          + ("   (each: seconds, extra MB)" if args.memory else ""))
    for name in args.strategies or strategy_names():
        strategy = load_strategy(name)
        columns = 2 if name == "lfosa_dichotomy" else args.known + (strategy.query_model == "detector")
        columns = 3 * args.known + 1 if name == "eoal" else columns  # K+1 detector and 2K one-vs-all logits
        cells = []
        for pool in args.pool:
            # a strategy that reads whole MC samples holds T x pool x K of them (float64 draws, then float32)
            mc_bytes = strategy.mc_samples * pool * args.known * 8 if "mc_probabilities" in strategy.needs else 0
            if mc_bytes > args.max_gb * 1e9:
                cells.append(f"{'>' + format(args.max_gb, 'g') + ' GB':>12}")  # MC samples would not fit
                continue
            outputs = synthetic_outputs(pool, args.known, columns, args.labeled, args.feature_dim,
                                        strategy.mc_samples if mc_bytes else 0, needs=strategy.needs)
            best, extra = float("inf"), 0.0
            for repeat in range(args.repeats):
                base = memory_mb("VmRSS")
                reset_peak()
                start = time.perf_counter()
                strategy.select(outputs, args.budget, np.random.default_rng(repeat))
                best = min(best, time.perf_counter() - start)
                extra = max(extra, memory_mb("VmHWM") - base)
            cells.append(f"{best:>12.3f}" + (f" {extra:>8,.0f}" if args.memory else ""))
            del outputs
        print(f"{name:<22}{strategy.query_model:>12}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
