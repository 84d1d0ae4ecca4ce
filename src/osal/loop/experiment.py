"""One active-learning run: R queries, a fresh Trainer and fresh modules for every fit.

Row r of metrics.csv describes the state after r queries: the counts, the r-th query
(what it cost and how many knowns it found) and the classifier trained on the labels
after it. Round 0 tests the classifier trained on the initial set; round R the one
trained after the last query.
"""

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from osal.build import build
from osal.data.datamodule import PoolDataModule
from osal.data.split import OpenSetSplit
from osal.engine import distributed
from osal.engine.fit import Fit, fit_role
from osal.engine.inference import inference_device
from osal.engine.roles import fits_once
from osal.errors import OsalError, brief
from osal.folders import check_writable, exclusive_use, shown
from osal.loop import selection_metrics as sm
from osal.loop.data import open_set_data
from osal.loop.deadline import passed_before_start, too_late_for
from osal.loop.progress import RoundProgressBar, fit_line, format_duration, on_terminal
from osal.loop.protocol_estimate import estimate_lines, probe, protocol_of
from osal.loop.query_callback import QueryCallback
from osal.loop.round_estimate import MARGIN, fit_schedule, predicted_seconds
from osal.loop.run_folder import composed_config, refuse_unless_ours, take_folder
from osal.loop.validate import validate_against_data, validate_config, validate_strategy
from osal.records.metrics import MetricsTable, table_header, table_line
from osal.records.run_files import record_kind
from osal.records.run_logger import check_logger_can_start, close_logger, log_row, open_logger
from osal.records.run_state import STATE_FILE, STATE_FIX, RunState, load_state
from osal.records.summary import read_summary, remove_summary, write_summary
from osal.stored import DamagedFileError
from osal.strategies.base import Strategy

log = logging.getLogger(__name__)

NO_QUERY = {"queried": 0, "queried_known": 0, "inference_seconds": 0.0, "selection_seconds": 0.0}


def where_it_stands(output_dir: Union[str, os.PathLike]) -> str:
    """What a stopped run kept, for the line that ends an interrupted or failed command."""
    try:
        saved = load_state(output_dir)
    except OsalError:
        return f"{shown(os.path.join(output_dir, STATE_FILE))} does not read back, so what the run kept is unknown"
    except OSError:
        saved = None
    if saved is None:
        return f"no round of the run in {shown(output_dir)} was completed, so nothing of it is kept"
    return f"the run in {shown(output_dir)} keeps rounds 0..{saved.last_round}"


@dataclass
class Loop:
    """What the rounds work on: the data, the strategy, the query generator and the records so far."""

    split: OpenSetSplit
    datamodule: PoolDataModule
    strategy: Strategy
    query_rng: np.random.Generator
    table: MetricsTable
    logger: object
    first_round: int = 0
    queries: dict = field(default_factory=dict)  # query number -> QueryCallback.result, for rows not yet written
    classifier_net: Optional[torch.nn.Module] = None  # the last classifier, for a strategy that reads it too
    detector_net: Optional[torch.nn.Module] = None  # a detector fit once per run (detector.fit_once), once fit


class Experiment:
    """Runs the loop described by a composed config and writes its records under `output_dir`."""

    def __init__(self, cfg: DictConfig, output_dir: Union[str, os.PathLike], hydra_files: Optional[dict] = None):
        """`hydra_files`: the .hydra/ files to write once the directory is known to be this run's
        (osal.loop.hydra_files; train.py gives them, a run made in Python has none)."""
        validate_config(cfg)
        self.cfg = cfg
        self.output_dir = str(output_dir)
        self.seed = int(cfg.seed)
        self.rounds = int(cfg.al.rounds)
        check_writable(self.output_dir, "the run directory", "give hydra.run.dir=... a folder you can write to")
        os.makedirs(self.output_dir, exist_ok=True)
        self.config = OmegaConf.to_container(cfg, resolve=True)
        self.hydra_files = hydra_files
        self.composed = composed_config(cfg, hydra_files)

    # -- the run, top to bottom ----------------------------------------------------------
    def run(self) -> dict:
        """Run (or resume) the loop; a second command on the same run directory meanwhile is refused."""
        # under DDP the main process alone holds the directory, decides and writes; the others follow it
        main = distributed.is_main()
        strategy = self.check_before_start()
        if main:  # a directory that is not this run's is refused as it was: not even a lock file is made
            refuse_unless_ours(self.output_dir, self.cfg, self.config, self.composed)
        stopped = distributed.broadcast_from_main(self.started_after_deadline() if main else None)
        if stopped is not None:
            return stopped
        with exclusive_use(self.output_dir, "src/train.py") if main else contextlib.nullcontext():
            run_started = time.perf_counter()
            if main:
                # again, now that no other command can write there: one may have, since the check above
                refuse_unless_ours(self.output_dir, self.cfg, self.config, self.composed)
                if self.cfg.get("fresh"):
                    self.clear_records()
            saved = distributed.broadcast_from_main(load_state(self.output_dir) if main else None)
            finished = distributed.broadcast_from_main(self.finished_run(saved) if main else None)
            if finished is not None:
                return finished
            if main:
                take_folder(self.output_dir, self.hydra_files)
            loop = self.start_or_resume(strategy, saved)
            started = time.perf_counter()
            try:
                note, stopped = self.run_rounds(loop)
            except BaseException:
                close_logger(loop.logger, "failed")
                raise
            close_logger(loop.logger)
            return self.finish(loop, note, stopped, setup_seconds=started - run_started,
                               loop_seconds=time.perf_counter() - started)

    def check_before_start(self) -> Strategy:
        """What can be refused before the run directory is looked at; returns the strategy."""
        strategy = build(self.cfg.strategy.selector)  # its parameters are checked here
        validate_strategy(self.cfg, strategy)
        if distributed.is_main():
            check_logger_can_start(self.cfg)
        return strategy

    def started_after_deadline(self) -> Optional[dict]:
        """The summary of a run stopped before its next round, when `deadline` had passed before this command
        started (nothing read, nothing written: osal.loop.deadline); else None."""
        saved = load_state(self.output_dir) if self.cfg.get("deadline") is not None else None
        stopped = passed_before_start(self.cfg, self.output_dir, saved.last_round if saved else None)
        if stopped is None:
            return None
        log.info(stopped)
        return {"rows": 0, "final": None, "note": None, "output_dir": shown(self.output_dir), "rounds": self.rounds,
                "setup_seconds": 0.0, "loop_seconds": 0.0, "stopped": stopped}

    def start_or_resume(self, strategy: Strategy, saved: Optional[RunState]) -> Loop:
        """Read the data and draw the initial set; a saved run's pool, generator and rows are taken back."""
        split, datamodule = open_set_data(self.cfg)
        validate_against_data(self.cfg, split)
        loop = Loop(split, datamodule, strategy,
                    query_rng=np.random.default_rng(np.random.SeedSequence([self.seed, 1])),
                    table=MetricsTable(os.path.join(self.output_dir, "metrics.csv") if distributed.is_main() else None),
                    logger=None)
        if saved is not None:
            try:
                datamodule.pool.load_state_dict(saved.pool)
                loop.query_rng.bit_generator.state = saved.rng_state
                strategy.load_state_dict(saved.strategy_state)
            except (ValueError, TypeError, KeyError) as error:
                raise DamagedFileError(f"{os.path.join(self.output_dir, STATE_FILE)} does not fit this run's data "
                                       f"({brief(error)}); {STATE_FIX}") from None
            loop.queries = saved.queries
            if distributed.is_main():
                loop.table.restore(saved.last_round)
            loop.table.rows = distributed.broadcast_from_main(loop.table.rows)
            loop.first_round = saved.last_round + 1
            log.info("resuming %s after round %d", shown(self.output_dir), saved.last_round)
        cfg = self.cfg
        log.info("%s, mismatch %s (%d known classes), strategy %s, seed %d: %d rounds of %d queries",
                 cfg.dataset.name, cfg.mismatch, split.num_known, cfg.strategy.name, self.seed, self.rounds,
                 cfg.al.query_size)
        if loop.first_round == 0:
            self.say_how_long(loop)
        log.info(table_header())
        if not distributed.is_main():
            return loop
        loop.logger = open_logger(cfg, self.output_dir)
        for row in loop.table.rows:  # a resumed run's logger starts afresh: give it the rounds done before
            log_row(loop.logger, row)
        return loop

    def say_how_long(self, loop: Loop) -> None:
        """Before round 0: how long the whole run should take here, from a probe (osal.loop.protocol_estimate);
        past two hours, the faster ways. Not under DDP (the probe would train in one process alone)."""
        if distributed.active() or not self.cfg.get("estimate", True):
            return
        with_detector = loop.strategy.query_model == "detector"
        protocol = protocol_of(self.cfg, loop.datamodule, with_detector, tuple(loop.strategy.needs),
                               loop.split.n_known_initial_pool)
        measured = probe(self.cfg, loop.datamodule)
        device = inference_device(self.cfg.trainer)
        for line in estimate_lines(protocol, measured, "GPU" if device.type == "cuda" else "CPU",
                                   device.type == "cuda", frozen=loop.datamodule.frozen):
            log.info(line)

    def eta(self, loop: Loop) -> float:
        """Seconds the rounds left should take, by the cost model fitted to this run's timed rounds (the one a
        deadline and the campaign use: osal.loop.round_estimate); NaN when nothing is timed."""
        with_detector = loop.strategy.query_model == "detector"
        left = predicted_seconds(loop.table.rows, self.rounds, int(self.cfg.al.query_size), fit_schedule(self.cfg),
                                 with_detector)
        finished = len(loop.table.rows) > self.rounds  # rounds 0..R written: nothing left, 0 s
        return sum(left) * MARGIN if left or finished else float("nan")

    def run_rounds(self, loop: Loop) -> tuple[Optional[str], Optional[str]]:
        """Rounds first_round..R; returns (why the run ended early or None, why it stopped or None)."""
        for r in range(loop.first_round, self.rounds + 1):
            stopped = distributed.broadcast_from_main(
                too_late_for(self.cfg, r, loop.table.rows, loop.strategy.query_model == "detector"))
            if stopped:
                log.info(stopped)
                return None, stopped
            if r > 0 and r not in loop.queries and len(loop.datamodule.pool.unlabeled) == 0:
                note = f"the unlabeled pool ran out after {r - 1} queries; the run ends early"
                log.info(note)
                return note, None
            row = self.run_round(loop, r)
            log.info("%s %7s", table_line(row), format_duration(self.eta(loop)))
        return None, None

    def run_round(self, loop: Loop, r: int) -> dict:
        """Round r: query r (from a detector fit now, or from the last round's classifier), then fit and test
        the classifier on the labels after it, and keep the round."""
        pool = loop.datamodule.pool
        fit_seconds = 0.0
        if r > 0 and r not in loop.queries:
            if loop.strategy.query_model == "classifier":
                # a finished run continued to more rounds: its last classifier asked no query; fit it again (same
                # seed, same weights) to ask query r as an uninterrupted run would have
                query = self.new_query(loop, r)
                fit_seconds += self.fit("classifier", r - 1, loop.datamodule, query).seconds
            else:
                if "classifier_logits" in loop.strategy.needs and loop.classifier_net is None:
                    # a resumed run has not kept the last round's classifier: fit it again (same seed, same weights)
                    loop.classifier_net = self.fit("classifier", r - 1, loop.datamodule).module.net
                # a detector-based strategy fits its detector on the labels after r - 1 queries, then asks query r
                query = self.new_query(loop, r)
                fit_seconds += self.fit_detector(loop, r, query)
            loop.queries[r] = query.result
        counts = pool.counts()
        # a classifier-based strategy queries (r + 1) from the classifier it trains now
        query = None
        if r < self.rounds and loop.strategy.query_model == "classifier" and len(pool.unlabeled):
            query = self.new_query(loop, r + 1)
        classifier = self.fit("classifier", r, loop.datamodule, query)
        fit_seconds += classifier.seconds
        if "classifier_logits" in loop.strategy.needs:
            loop.classifier_net = classifier.module.net
        if query is not None:
            loop.queries[r + 1] = query.result
        tested = classifier.trainer.test(classifier.module, datamodule=loop.datamodule, verbose=False)[0]
        row = self.make_row(r, counts, loop.queries.pop(r, None), tested, fit_seconds, loop.split)
        loop.table.append(row)
        distributed.check_same_everywhere(f"pool states after round {r}", *pool.state_dict().values())
        if not distributed.is_main():
            return row
        pool.save(os.path.join(self.output_dir, f"pool_round_{r:02d}.npz"))
        # the round is complete once its state is saved: a crash from here on loses nothing of it
        RunState(r, pool.state_dict(), loop.query_rng.bit_generator.state, loop.queries, self.config,
                 loop.strategy.state_dict()).save(self.output_dir)
        log_row(loop.logger, row)
        return row

    def finish(self, loop: Loop, note: Optional[str], stopped: Optional[str], setup_seconds: float,
               loop_seconds: float) -> dict:
        """The run's summary; written to summary.json (the mark of a finished run) unless it stopped early."""
        summary = {"rows": len(loop.table.rows), "final": loop.table.rows[-1], "note": note,
                   "output_dir": shown(self.output_dir), "rounds": self.rounds,
                   # this invocation's time reading the data and building the pool, then running its rounds
                   "setup_seconds": setup_seconds, "loop_seconds": loop_seconds}
        if stopped:  # unfinished: no summary.json, and the same command continues it
            return {**summary, "stopped": stopped}
        if not distributed.is_main():
            return summary
        write_summary(self.output_dir, summary)
        return summary

    # -- a round's parts -----------------------------------------------------------------
    def new_query(self, loop: Loop, query_number: int) -> QueryCallback:
        return QueryCallback(loop.datamodule, loop.strategy, self.cfg.al.query_size, query_number, loop.query_rng,
                             classifier=loop.classifier_net)

    def fit_detector(self, loop: Loop, r: int, query: QueryCallback) -> float:
        """Fit round r's detector and ask query r with it; the seconds spent fitting.

        A detector fit once per run (`detector.fit_once`: MQNet's self-supervised network, which the labels do
        not change) is fit at the first query this command asks, with round 1's seed, and asks the later
        queries without a fit; a resumed run fits the same network again instead of reading weights from
        the run directory. Every other detector is fit afresh each round, after the round's classifier
        where it continues from it (`start_from`: BUAL's negative-learning network).
        """
        if not fits_once(self.cfg, "detector"):
            return self.fit("detector", r, loop.datamodule, query, start_from=loop.classifier_net).seconds
        if loop.detector_net is None:
            fit = self.fit("detector", 1, loop.datamodule, query)
            loop.detector_net = fit.module.net
            return fit.seconds
        query.ask(loop.detector_net, inference_device(self.cfg.trainer))
        log.info("round %d/%d detector: fit once per run, not again", r, self.rounds)
        return 0.0

    def fit(self, role: str, round_index: int, datamodule: PoolDataModule,
            query: Optional[QueryCallback] = None, start_from: Optional[torch.nn.Module] = None) -> Fit:
        """Fit a fresh module of `role`; its seconds leave out the query's inference and selection."""
        callbacks = [query] if query is not None else []
        live = bool(self.cfg.trainer.get("enable_progress_bar", True)) and on_terminal() and distributed.is_main()
        if live:
            callbacks.append(RoundProgressBar(round_index, self.rounds, role))
        fit = fit_role(self.cfg, role, round_index, datamodule, callbacks, root_dir=self.output_dir,
                       progress_bar=live, start_from=start_from)
        if query is not None and query.result is not None:
            fit.seconds -= query.result["inference_seconds"] + query.result["selection_seconds"]
        if not live:  # a file gets one line per fit instead of a bar's redraws
            loss = fit.trainer.callback_metrics.get("train_loss")
            log.info(fit_line(role, round_index, self.rounds, fit.trainer.current_epoch,
                              None if loss is None else float(loss), fit.seconds))
        return fit

    @staticmethod
    def make_row(r: int, counts: dict, query: Optional[dict], tested: dict, fit_seconds: float,
                 split: OpenSetSplit) -> dict:
        query = query or NO_QUERY
        return {
            "round": r, **counts,
            "queried": query["queried"], "queried_known": query["queried_known"],
            "precision": sm.precision(query["queried"], query["queried_known"]),
            "recall": sm.recall(counts["n_labeled"], split.n_initial, split.n_known_initial_pool),
            "recall_incl_initial": sm.recall_incl_initial(counts["n_labeled"], split.n_known_total),
            "test_accuracy": float(tested["test_accuracy"]),
            "test_macro_precision": float(tested["test_macro_precision"]),
            "test_macro_recall": float(tested["test_macro_recall"]),
            "test_macro_f1": float(tested["test_macro_f1"]),
            "query_seconds": query["inference_seconds"] + query["selection_seconds"],
            "inference_seconds": query["inference_seconds"],
            "selection_seconds": query["selection_seconds"],
            "fit_seconds": fit_seconds,
        }

    # -- resuming ------------------------------------------------------------------------
    def finished_run(self, saved: Optional[RunState]) -> Optional[dict]:
        """The saved summary when the run directory holds this run, finished for the rounds asked now; else None.

        (A run with a different config was refused before: osal.loop.run_folder.) A summary.json marks a
        finished run (the report and the sweep tally read it so): when a larger al.rounds continues a finished
        run, its old summary is removed until the new end.
        """
        if saved is None:
            return None
        summary = read_summary(self.output_dir)
        if summary is None:
            return None
        if saved.last_round >= self.rounds or summary.get("note"):
            log.info("this run already finished (%s); nothing to do. Set fresh=true to run it again from "
                     "scratch, or raise al.rounds to continue it", shown(self.output_dir))
            return summary
        remove_summary(self.output_dir)
        return None

    def clear_records(self) -> None:
        """fresh=true: remove this run directory's records (checked to be osal's) so the run starts from scratch."""
        for name in os.listdir(self.output_dir):
            if record_kind(name) is not None:
                os.remove(os.path.join(self.output_dir, name))
