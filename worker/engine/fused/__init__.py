"""Fused sweeps: many jobs as one vectorised run."""
