"""Backbones and the two LightningModules (detector and classifier)."""
