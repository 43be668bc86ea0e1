"""scaletest."""
