"""Stages of the video-to-detector workflow: one module per stage, each a set
of plain functions with a small command line (``python -m detflow.<stage>``)."""
