"""parkgrid sim."""
