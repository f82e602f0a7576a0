"""parkgrid hmi."""
