"""The selection metrics and how epochs rank by them, shared by the training
stage (which keeps the best snapshots) and the best-snapshot stage (which
picks one): both must rank alike, or the chosen snapshot could be gone."""
import numpy as np

# metric name in config -> (TensorBoard tag written by Keras's callback, True when larger is better)
METRICS = {"mAP": ("epoch_mAP", True), "loss": ("epoch_loss", False)}


def ranked_steps(values, metric):
    """Steps (0-based epochs) of ``values`` ({step: value}) from best to worst; ties go to the earliest.

    Values are compared as the float32 that TensorBoard stores, so in-memory
    values (training) and logged values (selection) rank the same.
    """
    larger_is_better = METRICS[metric][1]
    sign = -1.0 if larger_is_better else 1.0
    return sorted(values, key=lambda step: (sign * float(np.float32(values[step])), step))
