"""The paper's figures: a metric against round, one panel per dataset x mismatch, one line per strategy."""

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or CI
import matplotlib.pyplot as plt  # noqa: E402

from osal.atomic import atomic_write  # noqa: E402
from osal.report.curves import METRICS, mean_curves  # noqa: E402

# LfOSA and its ablations stand out; baselines share the palette's quieter colours
EMPHASIS = {"lfosa": dict(color="black", linewidth=2.5, zorder=5)}


def draw(runs: list, metric: str, path: str, published: Sequence[dict] = ()) -> str:
    """Write one PNG for `metric`; returns its path. `published` runs (osal.report.published) are drawn dotted
    in their strategy's colour, in the panels that hold runs of ours."""
    curves = mean_curves(runs, metric)
    theirs = mean_curves([run for run in published if any(r.get(metric) is not None for r in run["rows"])], metric)
    datasets = sorted({d for d, _ in curves})
    mismatches = sorted({m for _, m in curves})
    strategies = sorted({s for panel in curves.values() for s in panel})
    # baselines solid, LfOSA ablations dashed, each in its own colour of tab10 (then tab20's pale ones)
    palette = [plt.cm.tab10(i) for i in range(10)] + [plt.cm.tab20(2 * i + 1) for i in range(10)]
    colours = {s: palette[i % len(palette)] for i, s in enumerate(x for x in strategies if x != "lfosa")}
    fig, axes = plt.subplots(len(datasets), len(mismatches), squeeze=False, sharex=True,
                             figsize=(4.2 * len(mismatches), 3.4 * len(datasets)))
    for i, dataset in enumerate(datasets):
        for j, mismatch in enumerate(mismatches):
            ax = axes[i][j]
            panel = curves.get((dataset, mismatch), {})
            for strategy in strategies:
                if strategy not in panel:
                    continue
                rounds, mean, std, seeds = panel[strategy]
                style = EMPHASIS.get(strategy, dict(color=colours.get(strategy), linewidth=1.4,
                                                    linestyle="--" if strategy.startswith("lfosa_") else "-"))
                ax.plot(rounds, mean, marker="o", markersize=3, label=strategy, **style)
                if seeds > 1:
                    ax.fill_between(rounds, mean - std, mean + std, color=style["color"], alpha=0.15)
                if strategy in theirs.get((dataset, mismatch), {}):
                    p_rounds, p_mean, _, _ = theirs[(dataset, mismatch)][strategy]
                    ax.plot(p_rounds, p_mean, linestyle=":", marker="x", markersize=4, linewidth=1.6,
                            color=style["color"], label=f"{strategy} (published)")
            ax.set_title(f"{dataset}, mismatch {mismatch:g}")
            ax.set_xlabel("round (queries so far)")
            ax.set_ylabel(METRICS[metric])
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            for h, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(h)
                    labels.append(label)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(f"{METRICS[metric]} against round: mean and spread (±1 std) over seeds")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path
