"""A run's records on disk: metrics.csv, state.npz, pool_round_XX.npz, summary.json, the run logger, sweep
tallies. The loop writes them, the report and the sweep callback read them; this package imports neither."""
