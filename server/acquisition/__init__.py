"""Acquisition: poll groups, scan classes, 4G uploads and the batch pipeline into the tag table."""
