"""Labelling tools adapted to this project: labelImg on a current Python."""
