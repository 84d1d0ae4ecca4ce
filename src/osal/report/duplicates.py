"""Two copies of one run count once: runs whose resolved configs agree in every setting that changes a result.

A report folder gathered from colleagues or from several machines can hold the same run twice (the same
seed, the same settings); averaged as two runs it would count one result twice and show a spread of 0.
"""

import json
from collections import defaultdict

from osal.records.settings import UNUSED_BEFORE, added_later, is_result_neutral

NEUTRAL = "(changes no result)"


def blank_result_neutral(config: dict, prefix: str = "") -> dict:
    """The unresolved config with every setting that changes no result set to one placeholder: RESULT_NEUTRAL,
    as a resumed run's check leaves them out, but al.rounds kept (it changes where a run ends, and the report
    tells runs apart by it), and Hydra's part (the output directory). Resolved after this, a setting that
    copies one of them (split.source.root from data_dir) agrees between copies, and an environment variable of
    another machine (data_dir) need not be set here."""
    blanked = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name == "hydra" or (is_result_neutral(name) and name != "al.rounds"):
            blanked[key] = NEUTRAL
        elif isinstance(value, dict):
            blanked[key] = blank_result_neutral(value, name + ".")
        else:
            blanked[key] = value
    return blanked


def result_settings(config: dict) -> str:
    """A resolved config of blank_result_neutral as text, equal for two copies of one run."""
    # a run recorded before a knob existed computed what its default computes: a knob at that default (or one
    # read only with a later knob, as model.input_mean with model.pretrained) tells no copies apart
    flat = {k: v for k, v in _flatten(config).items() if added_later(k) not in (v, UNUSED_BEFORE)}
    return json.dumps(flat, sort_keys=True, default=str)


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def one_of_each(runs: list) -> tuple[list, list]:
    """(the runs with each run once, [(the copy counted, [the copies left out])]).

    Of the copies of one run the report keeps a finished one over an unfinished one, then the one that
    reached the latest round, then the first folder in sorted order; `runs` keeps its order.
    """
    copies = defaultdict(list)
    for run in runs:
        copies[result_settings(run["config"])].append(run)
    left_out, duplicates = set(), []
    for same in copies.values():
        if len(same) > 1:
            kept = min(same, key=lambda r: (not r["finished"], -r["reached"], str(r["dir"])))
            others = [r for r in same if r is not kept]
            duplicates.append((kept, others))
            left_out |= {id(r) for r in others}
    duplicates.sort(key=lambda pair: str(pair[0]["dir"]))
    return [run for run in runs if id(run) not in left_out], duplicates
