"""The engine both the research loop (osal.loop) and the annotation commands (osal.annotate) run on:
build a Trainer, fit a role's module with that fit's own seed, run inference for a strategy's needs,
and query. It knows data, models and strategies, and nothing of the loop, the annotation project or
the records."""
