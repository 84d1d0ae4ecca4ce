"""Which settings change what a run computes: the one list that resume, run-directory names and the report share.

A knob in RESULT_NEUTRAL changes how a run is watched, fed or paced, never its numbers:
- a run may be resumed with a different value (osal.loop checks `differences_that_matter`);
- Hydra leaves it out of the run directory's name (conf/hydra/default.yaml reads
  `${osal_exclude_keys:}`, which is NAMED_IN_DIRECTORY + RESULT_NEUTRAL);
- the report does not tell runs apart by it (except al.rounds, which changes where a run ends).
"""

MISSING = object()

# knobs that change how a run is watched, fed or paced, not what it computes
RESULT_NEUTRAL = ("fresh", "logger", "data_dir", "trainer.enable_progress_bar", "data.num_workers",
                  "data.pin_memory", "data.inference_batch_size", "al.rounds", "dataset.source.root",
                  "dataset.source.download", "cache_dir", "dataset.source.cache_dir", "deadline",
                  "data.memory_budget", "estimate", "split.source.root", "split.source.download",
                  "split.source.cache_dir", "data.features.cache_dir",
                  # the order a campaign runs its grid in (stages added later must not refuse the runs done)
                  "campaign")

# knobs added after runs were recorded, with the value that computes what those runs computed: a saved config
# without the key resumes under that value
# (UNUSED_BEFORE: a setting read only when a knob added with it is set, so any value agrees with an older run)
UNUSED_BEFORE = "(unused by runs recorded before it existed)"
ADDED_LATER = {"trainer.strategy": "auto", "trainer.num_nodes": 1, "trainer.sync_batchnorm": True,
               "trainer.max_steps": -1, "model.channels_last": None, "model.pretrained": None, "model.freeze": False,
               "model.input_mean": UNUSED_BEFORE, "model.input_std": UNUSED_BEFORE, "data.features": UNUSED_BEFORE}

# what a run directory's name already says (conf/hydra/default.yaml: run.dir and sweep.subdir)
NAMED_IN_DIRECTORY = ("dataset", "mismatch", "strategy", "seed")


def directory_name_exclusions() -> list:
    """Hydra's override_dirname.exclude_keys: overrides that do not add to a run directory's name."""
    return list(NAMED_IN_DIRECTORY) + list(RESULT_NEUTRAL)


def added_later(name: str) -> object:
    """The value that computes what a run recorded before the knob `name` existed computed (UNUSED_BEFORE: any
    value does), or MISSING for a knob that always existed. A copy of the model config (classifier.network,
    strategy.detector.module.network, ...) has the model's knobs."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):  # a setting inside one added later (data.features.freeze)
        found = ADDED_LATER.get(".".join(parts[:end]), MISSING)
        if found is not MISSING and (end == len(parts) or found == UNUSED_BEFORE):
            return found
    if len(parts) >= 2 and parts[-2] == "network":
        return ADDED_LATER.get("model." + parts[-1], MISSING)
    return MISSING


def config_differences(saved: dict, current: dict, prefix: str = "") -> list:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = set(saved) | set(current)
    diffs = []
    for key in sorted(keys, key=str):
        a, b = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, name + ".")
        elif a != b and not (key not in saved and added_later(name) in (b, UNUSED_BEFORE)):
            diffs.append(name)
    return diffs


def is_result_neutral(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESULT_NEUTRAL)


def differences_that_matter(saved: dict, current: dict) -> list:
    """The dotted keys in which two resolved configs differ, RESULT_NEUTRAL knobs left out."""
    return [d for d in config_differences(saved, current) if not is_result_neutral(d)]
