"""parkgrid alarms."""
