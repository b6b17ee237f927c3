"""Using a trained detector: detecting in images and video frames, drawing the boxes, and gesture events."""
