"""Reading many runs back: collecting metrics.csv files and summarising them."""
