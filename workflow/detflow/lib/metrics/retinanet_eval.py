"""keras-retinanet's evaluation (``keras_retinanet.utils.eval.evaluate``), with what it computes but does
not return: the precision-recall curve of each class, and the boxes and detections it compared.

The library's functions do the work; these context managers only record their arguments and results.
"""
import contextlib

import numpy as np
from keras_retinanet.utils import eval as library_eval


@contextlib.contextmanager
def recorded_pr_curves():
    """Record the (recall, precision, AP) that keras-retinanet's ``evaluate`` passes to and gets from its
    AP function: one entry per class with boxes, in label order."""
    curves = []
    library_compute_ap = library_eval._compute_ap

    def compute_ap(recall, precision):
        average_precision = library_compute_ap(recall, precision)
        curves.append((np.asarray(recall, dtype=float), np.asarray(precision, dtype=float), float(average_precision)))
        return average_precision

    library_eval._compute_ap = compute_ap
    try:
        yield curves
    finally:
        library_eval._compute_ap = library_compute_ap


@contextlib.contextmanager
def recorded_boxes():
    """Record the ground-truth boxes and detections that keras-retinanet's ``evaluate`` collects but does not
    return: ``{"annotations": [image][label] (n, 4), "detections": [image][label] (n, 5)}``, in image pixels."""
    recorded = {}
    library_functions = {name: getattr(library_eval, f"_get_{name}") for name in ("annotations", "detections")}

    def recording(name):
        def collect(*args, **kwargs):
            result = library_functions[name](*args, **kwargs)
            # _get_detections returns (detections, inference seconds per image).
            recorded[name] = result[0] if name == "detections" else result
            return result
        return collect

    for name in library_functions:
        setattr(library_eval, f"_get_{name}", recording(name))
    try:
        yield recorded
    finally:
        for name, function in library_functions.items():
            setattr(library_eval, f"_get_{name}", function)
