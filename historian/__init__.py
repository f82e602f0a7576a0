"""parkgrid historian."""
