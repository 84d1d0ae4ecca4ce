"""Campaigns: a grid of runs advanced a few GPU minutes at a time, its state kept in the repository."""
