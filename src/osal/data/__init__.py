"""Pools, datamodule and dataset sources."""
