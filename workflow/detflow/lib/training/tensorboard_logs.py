"""TensorBoard logs read with tensorboard's own event reader: the scalars that
training logs per epoch (losses, validation mAP, AP per class), for choosing
the best snapshot and for the report."""
from pathlib import Path

from tensorboard.backend.event_processing import plugin_event_accumulator as event_accumulator
from tensorboard.util import tensor_util

from detflow.lib.cli import InputError


def read_scalars(tensorboard_run, tag):
    """{step: value} of a scalar ``tag`` in a TensorBoard run folder, read with tensorboard's event reader.

    A step written more than once counts with its last value (by wall time).
    """
    tensorboard_run = Path(tensorboard_run)
    if not any(tensorboard_run.glob("events.out.tfevents.*")):
        raise InputError(tensorboard_run, "holds no TensorBoard event files: has training run?")
    # size guidance 0 keeps every event (the default samples 10 per tag).
    accumulator = event_accumulator.EventAccumulator(
        str(tensorboard_run), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    tags = accumulator.Tags()["tensors"]
    if tag not in tags:
        shown = ", ".join(sorted(tags)) or "none"
        raise InputError(tensorboard_run, f"no {tag!r} in the TensorBoard logs (tags found: {shown})")
    latest = {}
    for event in accumulator.Tensors(tag):
        if event.step not in latest or event.wall_time >= latest[event.step][0]:
            latest[event.step] = (event.wall_time, float(tensor_util.make_ndarray(event.tensor_proto)))
    values = {step: value for step, (_, value) in sorted(latest.items())}
    if not values:
        raise InputError(tensorboard_run, f"{tag!r} has no values in the TensorBoard logs")
    return values
