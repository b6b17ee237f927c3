"""Input data: videos and their frames, Pascal VOC annotations and where they come from, splits, the demo's truth."""
