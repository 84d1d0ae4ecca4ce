"""The estimate a run says before round 0: its arithmetic by hand, what each strategy's detector adds, the hint past
two hours, and a real probe that changes nothing of the run it precedes."""

import logging

import pytest

from osal.loop.protocol_estimate import (
    LONG,
    Probe,
    Protocol,
    describe,
    estimate_lines,
    protocol_of,
    round_seconds,
    whole_run_seconds,
)
from osal.loop.round_estimate import MARGIN, FitSchedule

from conftest import FAST, compose_config

PROBE = Probe(train_seconds_per_example=0.01, inference_seconds_per_example=0.001, epoch_seconds=0.5,
              fit_seconds=0.25)


def test_rounds_by_hand_for_a_classifier_strategy():
    # 2 queries of 10 from a pool of 100, 20 labeled at the start, 30 test examples, 3 epochs a fit
    protocol = Protocol(rounds=2, query_size=10, initial=20, pool=100, test=30, schedule=FitSchedule(3),
                        with_detector=False)
    fit = [3 * (n * 0.01 + 0.5) + 0.25 for n in (20, 30, 40)]  # 3 epochs, then the fit's own fixed cost
    test = 30 * 0.001 + 0.25
    queries = [0.0, 100 * 0.001, 90 * 0.001]  # round r scores the pool left after r - 1 queries
    assert round_seconds(protocol, PROBE) == pytest.approx([f + test + q for f, q in zip(fit, queries)])
    assert whole_run_seconds(protocol, PROBE) == pytest.approx(sum(round_seconds(protocol, PROBE)) * MARGIN)


def test_a_detector_adds_its_fit_its_unlabeled_examples_and_its_cost_and_a_fit_once_detector_one_fit():
    base = dict(rounds=2, query_size=10, initial=20, pool=100, test=0, schedule=FitSchedule(1))
    plain = round_seconds(Protocol(**base, with_detector=False), PROBE)
    detector = round_seconds(Protocol(**base, with_detector=True), PROBE)
    # round 1's detector trains on the 20 initial examples, round 2's on 30
    assert [d - p for d, p in zip(detector, plain)] == pytest.approx([0.0, 20 * 0.01 + 0.75, 30 * 0.01 + 0.75])
    csi = round_seconds(Protocol(**base, with_detector=True, detector_unlabeled=-1, detector_once=True,
                                 detector_cost=8.0), PROBE)
    assert [d - p for d, p in zip(csi, plain)] == pytest.approx([0.0, 8 * ((20 + 100) * 0.01 + 0.75), 0.0])
    sample = round_seconds(Protocol(**base, with_detector=True, detector_unlabeled=50), PROBE)
    assert sample[1] - plain[1] == pytest.approx((20 + 50) * 0.01 + 0.75)


@pytest.mark.parametrize("strategy, passes, once, unlabeled, cost", [
    ("random", 0.0, False, 0, 1.0), ("lfosa", 1.0, False, 0, 1.0), ("eaoa", 2.0, False, 0, 1.0),
    ("mqnet", 2.0, True, -1, 8.0), ("bual", 3.0 + 15 // 5, False, 5000, 2.0)])
def test_what_each_strategys_detector_adds_is_read_from_its_config_and_module(strategy, passes, once, unlabeled,
                                                                                cost):
    from osal.build import build
    from osal.loop.data import open_set_data
    cfg = compose_config(FAST + [f"strategy={strategy}"])  # digits: 15 epochs a fit
    selector = build(cfg.strategy.selector)
    _, datamodule = open_set_data(cfg)
    protocol = protocol_of(cfg, datamodule, selector.query_model == "detector", tuple(selector.needs))
    assert (protocol.inference_passes, protocol.detector_once, protocol.detector_unlabeled,
            protocol.detector_cost) == (passes, once, unlabeled, cost)
    assert protocol.initial == len(datamodule.pool.labeled) and protocol.pool == len(datamodule.pool.unlabeled)


def test_past_two_hours_the_faster_ways_are_named():
    slow = Protocol(rounds=10, query_size=1000, initial=1000, pool=100_000, test=1000, schedule=FitSchedule(100),
                    with_detector=True)
    lines = estimate_lines(slow, PROBE, "CPU", on_gpu=False)
    assert whole_run_seconds(slow, PROBE) > LONG
    assert lines[0].startswith("estimate: the whole run (10 queries of 1,000, 100 epochs a fit) should take about")
    assert "about 39.3 h on this machine's CPU (probe: 100 training images/s, 1,000 inferred/s)" in lines[0]
    assert lines[1] == ("faster: trainer=gpu on a machine with a GPU, or a shorter protocol (al.rounds, "
                        "al.query_size, trainer.max_epochs), or frozen features of a pretrained backbone "
                        "(model.pretrained=... model.freeze=true)")
    assert "model.freeze" not in estimate_lines(slow, PROBE, "CPU", on_gpu=False, frozen=True)[1]
    assert "trainer=gpu" not in estimate_lines(slow, PROBE, "GPU", on_gpu=True)[1]
    quick = Protocol(rounds=1, query_size=10, initial=10, pool=100, test=10, schedule=FitSchedule(1),
                     with_detector=False)
    assert len(estimate_lines(quick, PROBE, "CPU", on_gpu=False)) == 1


def test_durations_read_as_a_person_reads_them():
    assert [describe(s) for s in (45, 12 * 60, 3.5 * 3600, 2.25 * 86400)] == ["45 s", "12 min", "3.5 h", "2.2 days"]


def test_a_run_says_its_estimate_before_round_0_and_the_probe_changes_none_of_its_records(tmp_path, caplog):
    from osal.loop.experiment import Experiment
    from osal.records.metrics import read_metrics
    base = FAST + ["strategy=lfosa", "mismatch=0.4", "al.query_size=60", "al.rounds=2", "trainer.max_epochs=3"]
    with caplog.at_level(logging.INFO, logger="osal.loop.experiment"):
        Experiment(compose_config(base), tmp_path / "probed").run()
    said = [r.getMessage() for r in caplog.records]
    estimate = next(i for i, line in enumerate(said) if line.startswith("estimate: the whole run (2 queries of 60"))
    first_row = next(i for i, line in enumerate(said) if line.lstrip().startswith("0 "))
    assert estimate < first_row
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="osal.loop.experiment"):
        Experiment(compose_config(base + ["estimate=false"]), tmp_path / "unprobed").run()
    assert not any(r.getMessage().startswith("estimate:") for r in caplog.records)
    untimed = [[{k: v for k, v in row.items() if not k.endswith("seconds")} for row in read_metrics(d / "metrics.csv")]
               for d in (tmp_path / "probed", tmp_path / "unprobed")]
    assert untimed[0] == untimed[1]


def test_a_real_probe_measures_positive_times():
    from osal.loop.data import open_set_data
    from osal.loop.protocol_estimate import probe
    cfg = compose_config(FAST)
    _, datamodule = open_set_data(cfg)
    measured = probe(cfg, datamodule, steps=2)
    assert measured.train_seconds_per_example > 0 and measured.inference_seconds_per_example > 0
    assert measured.epoch_seconds >= 0 and measured.fit_seconds >= 0


def test_the_range_runs_from_queries_as_mixed_as_the_pool_to_every_query_known_capped_by_the_pools_knowns():
    from osal.loop.protocol_estimate import estimate_range
    protocol = Protocol(rounds=2, query_size=10, initial=20, pool=100, test=0, schedule=FitSchedule(1),
                        with_detector=False, known_in_pool=15)
    fit = [n * 0.01 + 0.5 + 0.25 for n in (20, 20 + 1.5, 20 + 3.0)]  # 15% of 0, 10, 20 queried are known
    queries = [0.0, 0.1, 0.09]
    mixed = [f + 0.25 + q for f, q in zip(fit, queries)]
    assert round_seconds(protocol, PROBE, known_share=0.15) == pytest.approx(mixed)
    every = round_seconds(protocol, PROBE)
    assert every[2] - every[1] == pytest.approx((35 - 30) * 0.01 - 0.01)  # the labeled set stops at 20 + 15
    assert estimate_range(protocol, PROBE) == pytest.approx((sum(mixed) * MARGIN, sum(every) * MARGIN))
    unknown = Protocol(**{**protocol.__dict__, "known_in_pool": None})
    low, high = estimate_range(unknown, PROBE)
    assert low == high == pytest.approx(whole_run_seconds(unknown, PROBE))


def test_a_campaign_status_estimates_runs_not_started_from_their_protocol():
    """A run not started yet is estimated from its own protocol (its strategy's detector: MQNet's CSI trains on
    every image at 8 views a step, once; LfOSA's on the labeled and invalid sets every round) on the pool a
    started run of the same data shows, at the images/s of the runs of its dataset."""
    from osal.campaign.progress import Progress, fill_unknown, protocol
    from osal.loop.protocol_estimate import protocol_of_sizes, training_work
    base = ["dataset=mnist", "al.rounds=4", "al.query_size=500", "trainer.max_epochs=2"]
    configs = {s: compose_config(base + [f"strategy={s}"]) for s in ("lfosa", "mqnet", "random")}
    started = Progress("lfosa_seed1", 3, 5, False, 1000.0, 5e4, 5e4, 50.0, 10.0, sizes=(120, 59880, 11000))
    waiting = {s: Progress(f"{s}_seed2", 0, 5, False, None, 0.0, None, None, None) for s in configs}
    progress = [started, *waiting.values()]
    fill_unknown(progress, [protocol(configs["lfosa"])] + [protocol(configs[s]) for s in waiting])
    lfosa = protocol_of_sizes(configs["lfosa"], 120, 59880, 0, True, ("logits",), 11000)
    assert waiting["lfosa"].work_left == pytest.approx(training_work(lfosa))
    assert waiting["lfosa"].seconds_left == pytest.approx(training_work(lfosa) / 1000.0)
    # MQNet's CSI fit on all 60,000 images at 8 views outweighs LfOSA's detector fits; random has no detector
    assert waiting["mqnet"].seconds_left > 3 * waiting["lfosa"].seconds_left
    assert waiting["random"].seconds_left < waiting["lfosa"].seconds_left
    # a dataset none of whose runs has shown a speed stays unknown
    other = Progress("cifar", 0, 5, False, None, 0.0, None, None, None)
    fill_unknown([other], [protocol(compose_config(["dataset=cifar10_cpu", "strategy=lfosa"]))])
    assert other.seconds_left is None
