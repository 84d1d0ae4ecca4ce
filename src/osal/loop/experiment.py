"""One active-learning run: R queries, a fresh Trainer and fresh modules for every fit.

Row r of metrics.csv describes the state after r queries: the counts, the r-th query
(what it cost and how many knowns it found) and the classifier trained on the labels
after it. Round 0 tests the classifier trained on the initial set; round R the one
trained after the last query.
"""

import json
import logging
import os
import time

import lightning as L
import numpy as np
from osal.build import build
from omegaconf import OmegaConf

from osal.errors import ConfigError
from osal.folders import check_writable, exclusive_use
from osal.loop import roles, selection_metrics as sm
from osal.loop.checkpoint import differences_that_matter, load_state, save_state
from osal.loop.progress import RoundProgressBar, eta_seconds, format_duration
from osal.loop.query_callback import QueryCallback
from osal.loop.run_logger import check_logger_can_start, close_logger, log_row, open_logger
from osal.loop.records import MetricsTable, table_header, table_line, write_json
from osal.loop.round_estimate import next_round_seconds
from osal.loop.run_files import foreign_records, record_kind
from osal.loop.validate import validate_against_data, validate_config, validate_strategy

log = logging.getLogger(__name__)


def where_it_stands(output_dir) -> str:
    """What a stopped run kept, for the line that ends an interrupted or failed command."""
    try:
        saved = load_state(output_dir)
    except (OSError, ValueError, KeyError):
        saved = None
    if saved is None:
        return f"no round of the run in {output_dir} was completed, so nothing of it is kept"
    return f"the run in {output_dir} keeps rounds 0..{saved[0]}"


class Experiment:
    """Runs the loop described by a composed config and writes its records under `output_dir`."""

    def __init__(self, cfg, output_dir):
        validate_config(cfg)
        self.cfg = cfg
        self.output_dir = str(output_dir)
        self.seed = int(cfg.seed)
        check_writable(self.output_dir, "the run directory", "give hydra.run.dir=... a folder you can write to")
        os.makedirs(self.output_dir, exist_ok=True)

    # -- seeds -------------------------------------------------------------------------
    def fit_seed(self, round_index: int, role: str) -> int:
        return roles.fit_seed(self.seed, round_index, role)

    # -- building blocks ---------------------------------------------------------------
    def make_trainer(self, role: str, round_index: int, callbacks=()):
        callbacks = list(callbacks)
        if self.cfg.trainer.get("enable_progress_bar", True):
            callbacks.append(RoundProgressBar(round_index, int(self.cfg.al.rounds), role))
        return build(self.cfg.trainer, callbacks=callbacks, logger=False, default_root_dir=self.output_dir)

    def role_config(self, role: str):
        return roles.role_config(self.cfg, role)

    def fit(self, role: str, round_index: int, datamodule, query: QueryCallback = None):
        """Fit a fresh module of `role`; returns (module, trainer, seconds spent fitting)."""
        seed = self.fit_seed(round_index, role)
        L.seed_everything(seed, workers=True, verbose=False)
        datamodule.begin_fit(seed)
        module_cfg, datamodule.train_with_invalid = self.role_config(role)
        module = build(module_cfg)(num_known=datamodule.num_known)
        trainer = self.make_trainer(role, round_index, [query] if query else [])
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        seconds = time.perf_counter() - start
        if query is not None and query.result is not None:
            seconds -= query.result["inference_seconds"] + query.result["selection_seconds"]
        return module, trainer, seconds

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> dict:
        """Run (or resume) the loop; a second command on the same run directory meanwhile is refused."""
        with exclusive_use(self.output_dir, "src/train.py"):
            return self._run()

    def _run(self) -> dict:
        cfg = self.cfg
        run_started = time.perf_counter()
        strategy = build(cfg.strategy.selector)  # its parameters are checked before any data is read
        validate_strategy(cfg, strategy)
        check_logger_can_start(cfg)
        config = OmegaConf.to_container(cfg, resolve=True)
        foreign = foreign_records(self.output_dir)
        if foreign:
            raise ConfigError(f"{self.output_dir} holds {foreign}, which is not a record of an osal run; a run "
                              "writes its records there (and fresh=true deletes them), so give this run its own "
                              "hydra.run.dir=..., or move that file away")
        if cfg.get("fresh"):
            self.clear_records()
        saved = load_state(self.output_dir)
        if saved is not None:
            self.check_same_run(saved[4], config)
            finished = self.finished_summary(saved[0])
            if finished is not None:
                log.info("this run already finished (%s); nothing to do. Set fresh=true to run it again from "
                         "scratch, or raise al.rounds to continue it", self.output_dir)
                return finished

        datamodule = build(cfg.data)
        datamodule.setup("fit")
        validate_against_data(cfg, datamodule)
        query_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1]))
        table = MetricsTable(os.path.join(self.output_dir, "metrics.csv"))
        queries = {}  # query number -> QueryCallback.result, for rows not yet written
        first_round = 0
        if saved is not None:
            last, arrays, rng_state, queries, _ = saved
            datamodule.load_state_dict(arrays)
            query_rng.bit_generator.state = rng_state
            table.restore(last)
            first_round = last + 1
            log.info("resuming %s after round %d", self.output_dir, last)
        n_initial = len(datamodule.pool.queried_in(0))
        rounds = int(cfg.al.rounds)
        log.info("%s, mismatch %s (%d known classes), strategy %s, seed %d: %d rounds of %d queries",
                 cfg.dataset.name, cfg.mismatch, datamodule.num_known, cfg.strategy.name, self.seed, rounds,
                 cfg.al.query_size)
        log.info(table_header())
        logger = open_logger(cfg, self.output_dir)
        for row in table.rows:  # a resumed run's logger starts afresh: give it the rounds done before
            log_row(logger, row)
        started = time.perf_counter()
        note = stopped = None
        try:
            for r in range(first_round, rounds + 1):
                stopped = self.too_late_for(r, table.rows, strategy)
                if stopped:
                    log.info(stopped)
                    break
                fit_seconds = 0.0
                if r > 0 and r not in queries:
                    if len(datamodule.pool.unlabeled) == 0:
                        note = f"the unlabeled pool ran out after {r - 1} queries; the run ends early"
                        log.info(note)
                        break
                    # a detector-based strategy fits its detector on the labels after r - 1 queries, then asks query r
                    query = QueryCallback(datamodule, strategy, cfg.al.query_size, r, query_rng)
                    _, _, fit_seconds = self.fit("detector", r, datamodule, query)
                    queries[r] = query.result
                counts = datamodule.pool.counts()
                # a classifier-based strategy queries (r + 1) from the classifier it trains now
                query = None
                if r < rounds and strategy.query_model == "classifier" and len(datamodule.pool.unlabeled):
                    query = QueryCallback(datamodule, strategy, cfg.al.query_size, r + 1, query_rng)
                classifier, trainer, seconds = self.fit("classifier", r, datamodule, query)
                fit_seconds += seconds
                if query is not None:
                    queries[r + 1] = query.result
                tested = trainer.test(classifier, datamodule=datamodule, verbose=False)[0]
                row = self.make_row(r, counts, queries.pop(r, None), tested, fit_seconds, datamodule, n_initial)
                table.append(row)
                datamodule.pool.save(os.path.join(self.output_dir, f"pool_round_{r:02d}.npz"))
                # the round is complete once its state is saved: a crash from here on loses nothing of it
                save_state(self.output_dir, r, datamodule, query_rng, queries, config)
                log_row(logger, row)
                eta = eta_seconds(time.perf_counter() - started, r - first_round + 1, rounds + 1 - first_round)
                log.info("%s %7s", table_line(row), format_duration(eta))
        except BaseException:
            close_logger(logger, "failed")
            raise
        close_logger(logger)
        summary = {"rows": len(table.rows), "final": table.rows[-1], "note": note, "output_dir": self.output_dir,
                   "rounds": rounds,
                   # this invocation's time reading the data and building the pool, then running its rounds
                   "setup_seconds": started - run_started, "loop_seconds": time.perf_counter() - started}
        if stopped:  # unfinished: no summary.json, and the same command continues it
            return {**summary, "stopped": stopped}
        write_json(os.path.join(self.output_dir, "summary.json"), summary)
        return summary

    def too_late_for(self, round_index: int, rows: list, strategy):
        """With a `deadline` (Unix time), why round `round_index` would not end before it, or None.

        The estimate comes from this run's earlier rounds (osal.loop.round_estimate); a run with none
        timed yet starts its round.
        """
        deadline = self.cfg.get("deadline")
        if deadline is None or not rows:
            return None
        needed = next_round_seconds(rows, int(self.cfg.al.rounds), int(self.cfg.al.query_size),
                                    int(self.cfg.trainer.max_epochs), strategy.query_model == "detector")
        left = float(deadline) - time.time()
        if needed is None or needed <= left:
            return None
        return (f"deadline: round {round_index} would need about {needed:.0f} s and {max(left, 0):.0f} s are left; "
                f"stopped after round {round_index - 1}, the same command continues it")

    # -- resuming ----------------------------------------------------------------------
    def check_same_run(self, saved: dict, current: dict) -> None:
        diffs = differences_that_matter(saved, current)
        if diffs:
            shown = ", ".join(diffs[:5]) + (", ..." if len(diffs) > 5 else "")
            raise ConfigError(f"{self.output_dir} holds a run with a different config (differs in {shown}); "
                              "give this run its own hydra.run.dir, or set fresh=true to replace that run")

    def finished_summary(self, last_round: int):
        """The saved summary when the run is complete for the rounds asked now, else None.

        A summary.json marks a finished run (the report and the sweep tally read it so): when a
        larger al.rounds continues a finished run, its old summary is removed until the new end.
        """
        path = os.path.join(self.output_dir, "summary.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            summary = json.load(f)
        if last_round >= int(self.cfg.al.rounds) or summary.get("note"):
            return summary
        os.remove(path)
        return None

    def clear_records(self) -> None:
        """fresh=true: remove this run directory's records (checked to be osal's) so the run starts from scratch."""
        for name in os.listdir(self.output_dir):
            if record_kind(name) is not None:
                os.remove(os.path.join(self.output_dir, name))

    @staticmethod
    def make_row(r, counts, query, tested, fit_seconds, datamodule, n_initial) -> dict:
        query = query or {"queried": 0, "queried_known": 0, "inference_seconds": 0.0, "selection_seconds": 0.0}
        return {
            "round": r, **counts,
            "queried": query["queried"], "queried_known": query["queried_known"],
            "precision": sm.precision(query["queried"], query["queried_known"]),
            "recall": sm.recall(counts["n_labeled"], n_initial, datamodule.n_known_initial_pool),
            "recall_incl_initial": sm.recall_incl_initial(counts["n_labeled"], datamodule.n_known_total),
            "test_accuracy": float(tested["test_accuracy"]),
            "test_macro_precision": float(tested["test_macro_precision"]),
            "test_macro_recall": float(tested["test_macro_recall"]),
            "test_macro_f1": float(tested["test_macro_f1"]),
            "query_seconds": query["inference_seconds"] + query["selection_seconds"],
            "inference_seconds": query["inference_seconds"],
            "selection_seconds": query["selection_seconds"],
            "fit_seconds": fit_seconds,
        }
