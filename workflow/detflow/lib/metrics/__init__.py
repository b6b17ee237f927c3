"""How good detections are: box overlap, COCO metrics and the confusion matrix, keras-retinanet's evaluation,
and when two runs' detections count as the same."""
