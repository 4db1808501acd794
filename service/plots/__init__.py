"""Pictures of histories, comparisons, sweeps and loss landscapes (matplotlib, no display)."""
