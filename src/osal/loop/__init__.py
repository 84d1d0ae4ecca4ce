"""The outer active-learning loop: rounds, the query callback and the run's records."""
