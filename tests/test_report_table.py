"""The report's columns of what a user pays: unknowns queried, the worst query's precision, and the recall AUC a
strategy of perfect precision reaches on the same run (the ceiling)."""

import math

import pytest

from osal.report.curves import area_under_curve
from osal.report.table import ceiling_recall, final_values, markdown, summarise


def row(r, labeled, queried, known, recall):
    precision = known / queried if queried else None
    # 10 initial labels of 110 known examples: 100 in the pool before the first query
    return {"round": r, "n_labeled": labeled, "queried": queried, "queried_known": known, "precision": precision,
            "recall": recall, "recall_incl_initial": round((10 + recall * 100) / 110, 6), "test_accuracy": 0.9}


ROWS = [row(0, 10, 0, 0, 0.0), row(1, 40, 40, 30, 0.30), row(2, 50, 40, 10, 0.40), row(3, 90, 40, 40, 0.80)]


def test_unknowns_and_the_worst_query_are_counted_from_the_rows():
    values = final_values({"rows": ROWS})
    assert values["unknowns"] == 10 + 30 + 0
    assert values["worst_precision"] == pytest.approx(0.25)
    assert values["precision"] == pytest.approx((0.75 + 0.25 + 1.0) / 3)


def test_the_ceiling_finds_a_known_example_with_every_query_until_none_is_left():
    rounds, recall = ceiling_recall(ROWS)
    assert rounds.tolist() == [0, 1, 2, 3]
    assert recall.tolist() == pytest.approx([0.0, 0.4, 0.8, 1.0])  # 100 known: 40, 80, then the last 20
    assert final_values({"rows": ROWS})["ceiling_auc"] == pytest.approx(area_under_curve(rounds, recall))
    values = final_values({"rows": ROWS})
    assert values["recall_auc"] < values["ceiling_auc"]


def test_a_run_that_cannot_tell_its_known_count_has_no_ceiling_rather_than_a_wrong_one():
    rows = [dict(r, recall_incl_initial=0.0) for r in ROWS]
    assert math.isnan(final_values({"rows": rows})["ceiling_auc"])


def test_the_table_shows_the_new_columns_with_their_spread():
    runs = [{"rows": ROWS, "finished": True, "dataset": "mnist", "mismatch": 0.3, "strategy": "lfosa", "seed": s}
            for s in (1, 2)]
    text = markdown(summarise(runs))
    header, _, line = text.splitlines()
    assert header.endswith("| unknowns queried | avoidable unknowns | worst query precision | ceiling recall AUC |")
    assert "| 40 ± 0 | 20 ± 0 | 0.250 ± 0.000 |" in line


def test_avoidable_unknowns_leave_out_the_queries_beyond_the_pools_known_examples():
    # 120 queried for 100 known in the pool: 20 unknowns whatever the strategy; of the 40 queried, 20 were a choice
    assert final_values({"rows": ROWS})["avoidable"] == 40 - 20
    # a budget below the known count: every unknown queried was avoidable
    short = ROWS[:3]
    assert final_values({"rows": short})["avoidable"] == final_values({"rows": short})["unknowns"] == 40
    perfect = [row(0, 10, 0, 0, 0.0), row(1, 50, 40, 40, 0.4), row(2, 90, 40, 40, 0.8), row(3, 110, 40, 20, 1.0)]
    assert final_values({"rows": perfect})["avoidable"] == 0


def test_the_worst_query_is_one_that_could_have_been_all_known():
    # the last query of `perfect` asked for 40 with 20 known left: its 0.5 is no fault of the strategy
    perfect = [row(0, 10, 0, 0, 0.0), row(1, 50, 40, 40, 0.4), row(2, 90, 40, 40, 0.8), row(3, 110, 40, 20, 1.0)]
    assert final_values({"rows": perfect})["worst_precision"] == 1.0
    # every query of ROWS had at least 60 known left to find: all count, and the second's 0.25 is the worst
    assert final_values({"rows": ROWS})["worst_precision"] == pytest.approx(0.25)
