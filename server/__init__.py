"""parkgrid server."""
