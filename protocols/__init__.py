"""parkgrid protocols."""
