"""The steps of an annotation session: ask for the next batch, take in the answers, report where it stands."""

import logging
import os
import time
from typing import Union

import numpy as np

from osal.annotate.answers import read_answers
from osal.annotate.batch_files import check_batch_folder, write_batch
from osal.annotate.models import ROLES, current_models
from osal.annotate.project import UNKNOWN_NAME, AnnotationError, Project, shown
from osal.build import build
from osal.data.oracle import UNKNOWN, HumanOracle
from osal.engine.inference import LOGITS_ONLY, collect_outputs, inference_device
from osal.engine.query import query_pool
from osal.strategies.lfosa import known_probability

log = logging.getLogger(__name__)


def next_batch(project: Project) -> dict:
    """Train on the current labels, let the strategy choose the next batch, write its files; returns the batch."""
    pending = project.pending
    if pending is not None:
        raise AnnotationError(f"batch {pending['number']} is still waiting for answers; fill in "
                              f"{shown(project.batch_dir(pending['number']))}/answers.csv and run `annotate.py import` "
                              "with it first")
    cfg = project.cfg
    datamodule = project.datamodule()
    if len(project.pool.unlabeled) == 0:
        raise AnnotationError("every image of the pool has been answered; nothing is left to ask "
                              "(export the labels with `annotate.py export`)")
    number = len(project.batches) + 1
    check_batch_folder(project, number)  # before the training, not after it
    strategy = build(cfg.strategy.selector)
    datamodule.setup("fit")
    networks = current_models(project, datamodule)
    device = inference_device(cfg.trainer)
    started = time.perf_counter()
    rng = project.query_rng()
    strategy.load_state_dict(project.strategy_state)
    query = query_pool(networks[strategy.query_model], datamodule, strategy, int(cfg.al.query_size), rng, device,
                       classifier=networks["classifier"])
    # both networks' logits: the classifier suggests classes, the detector estimates what is known (a strategy
    # that needs no outputs, Random, left them out of its query)
    outputs = {role: query.outputs if role == strategy.query_model and query.outputs.logits is not None else
               collect_outputs(networks[role], datamodule, LOGITS_ONLY, device) for role in ROLES}
    chosen = query.selection.indices
    known = query.selection.known_probability
    if known is None:  # a strategy that does not estimate it: LfOSA's estimate from the detector
        known = known_probability(outputs["detector"], rng)
    # every pool image's known probability as of this batch: status estimates what is left from it
    project.known_probability[:] = np.nan
    project.known_probability[query.outputs.indices] = known
    classifier = outputs["classifier"]
    row_of = {int(i): r for r, i in enumerate(classifier.indices)}
    k = project.num_known
    suggested = classifier.logits[[row_of[int(i)] for i in chosen], :k].argmax(axis=1)
    probability = project.known_probability[chosen]
    unknown_below = float(cfg.annotate.unknown_below)
    batch = {"number": number, "indices": [int(i) for i in chosen],
             "suggestions": [UNKNOWN_NAME if p < unknown_below else project.class_names[c]
                             for c, p in zip(suggested, probability)],
             "known_probability": [float(p) for p in probability], "answered": False, "queried_known": None,
             "pool_known_estimate": float(np.nansum(project.known_probability[project.pool.unlabeled]))}
    files = write_batch(project, batch)
    project.batches.append(batch)
    project.save(rng)  # the batch exists from here on: its files are already on disk
    log.info("batch %d: %d images chosen by %s in %.1f s from %d unlabeled; suggested known: %d", number,
             len(chosen), cfg.strategy.name, time.perf_counter() - started, len(query.outputs),
             sum(s != UNKNOWN_NAME for s in batch["suggestions"]))
    for kind in ("csv", "sheet", "tasks", "config"):
        log.info("  %-7s %s", kind, shown(files[kind]))
    return batch


def import_answers(project: Project, path: Union[str, os.PathLike]) -> dict:
    """Apply a filled answer file to the pending batch, all or nothing; returns the batch's record."""
    batch = project.pending
    if batch is None:
        raise AnnotationError("no batch is waiting for answers; ask for one with `annotate.py next`")
    indices, answers = read_answers(path, project, batch)  # raises, listing every bad row, before any change
    # the one code path of the research loop: the pool asks its oracle (the person) and records the answers
    project.pool.oracle = HumanOracle(indices, answers, project.num_known)
    result = project.pool.annotate(indices, round_index=batch["number"])
    batch["answered"], batch["queried_known"] = True, result["queried_known"]
    strategy = build(project.cfg.strategy.selector)  # a strategy that learns from the answers (EAOA) is told them
    strategy.load_state_dict(project.strategy_state)
    strategy.observe(result["queried"], result["queried_known"])
    project.strategy_state = strategy.state_dict()
    project.save()
    log.info("batch %d: %d answers imported, %d known (precision %.3f), %d unknown", batch["number"],
             result["queried"], result["queried_known"], result["queried_known"] / max(result["queried"], 1),
             result["queried"] - result["queried_known"])
    return batch


def status(project: Project) -> dict:
    """Counts, per-class labels, each batch's precision, and the estimate of known images left in the pool."""
    labeled = project.pool.labeled
    per_class = np.bincount(project.answers[labeled], minlength=project.num_known)
    batches = [{"batch": b["number"], "size": len(b["indices"]), "known": b["queried_known"],
                "precision": None if not b["answered"] else b["queried_known"] / len(b["indices"])}
               for b in project.batches]
    scored = project.batches  # each `next` scores the whole unlabeled pool
    estimate = float(np.nansum(project.known_probability[project.pool.unlabeled])) if scored else None
    return {"images": len(project.pool), **project.pool.counts(),
            "initial": int(len(project.pool.queried_in(0))),
            "per_class": {name: int(n) for name, n in zip(project.class_names, per_class)},
            "batches": batches, "pending": None if project.pending is None else project.pending["number"],
            "known_left_estimate": estimate, "estimate_from_batch": scored[-1]["number"] if scored else None,
            "answered_unknown": int((project.answers == UNKNOWN).sum())}


def format_status(project: Project, s: dict) -> str:
    lines = [f"project {shown(project.directory)}: {s['images']} images in {shown(project.image_folder)}",
             f"classes: {', '.join(f'{n} {c}' for n, c in s['per_class'].items())}",
             f"labeled {s['n_labeled']}, unknown {s['n_invalid']}, unlabeled {s['n_unlabeled']} "
             f"({s['initial']} answered at init)"]
    if s["batches"]:
        lines.append("batch  size  known  precision")
        for b in s["batches"]:
            lines.append(f"{b['batch']:>5} {b['size']:>5} " + (f"{b['known']:>6} {b['precision']:>10.3f}"
                         if b["precision"] is not None else f"{'-':>6} {'waiting':>10}"))
        answered = [b for b in s["batches"] if b["precision"] is not None]
        if answered:
            total = sum(b["size"] for b in answered)
            lines.append(f"  all {total:>5} {sum(b['known'] for b in answered):>6} "
                         f"{sum(b['known'] for b in answered) / total:>10.3f}")
    if s["known_left_estimate"] is not None:
        lines.append(f"known images still in the pool: about {s['known_left_estimate']:.0f} (sum of the known "
                     f"probabilities batch {s['estimate_from_batch']}'s models gave the {s['n_unlabeled']} "
                     "unlabeled images)")
    command = f"python src/annotate.py -p {shown(project.directory)}"
    lines.append(f"next: {command} import <answers of batch {s['pending']}>" if s["pending"] else
                 f"next: {command} next")
    return "\n".join(lines)
