"""Labeling jobs for the private workforce: input manifests, N workers per item with holds that expire,
answers submitted exactly once, progress, consolidation and the output manifest."""
