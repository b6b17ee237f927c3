"""A training model: keras-retinanet's RetinaNet on a backbone (through the
compatibility module), its starting weights (none or a file, e.g. the ImageNet
weights the weights stage fetched, matched by layer name) and the compilation of keras-retinanet's train.py,
with config's heads (the library's or lib/model/heads.py) and box loss (lib/model/losses.py), and the
learning-rate schedule and weight averaging of tf.keras's optimizers."""
import logging

import h5py
from keras_retinanet import losses
from keras_retinanet.utils.model import freeze
from tensorflow import keras

from detflow.lib.cli import InputError
from detflow.lib.model import retinanet
from detflow.lib.model.losses import box_loss

log = logging.getLogger(__name__)

OPTIMIZER_CLIPNORM = 0.001  # keras-retinanet's default
WARMUP_START = 0.01  # the warm-up starts at this fraction of the learning rate
COSINE_FLOOR = 0.05  # the cosine decay ends at this fraction of the learning rate


def check_weights_file(path, model):
    """Refuse a weights file that cannot be read or shares no layer with ``model``."""
    try:
        with h5py.File(path, "r") as weights:
            group = weights["model_weights"] if "model_weights" in weights else weights
            names = {name.decode() if isinstance(name, bytes) else name for name in group.attrs.get("layer_names", [])}
    except OSError as error:
        raise InputError(path, f"is not a readable Keras .h5 weights file ({error})")
    matching = names & {layer.name for layer in model.layers if layer.weights}
    if not matching:
        raise InputError(path, f"shares no layer with a {model.name} on this backbone: wrong file or backbone?")
    return len(matching)


def new_model(settings, num_classes):
    """A fresh training model with its starting weights, compiled as keras-retinanet's train.py does."""
    modifier = freeze if settings.freeze_backbone else None
    model = retinanet.build_retinanet(settings.backbone, num_classes, settings.feature_size, settings.head_norm,
                                      modifier=modifier)
    weights = settings.weights
    if weights != "none":
        matching = check_weights_file(weights, model)
        # As keras-retinanet: by layer name, skipping layers whose shapes differ (e.g. the class head).
        model.load_weights(weights, by_name=True, skip_mismatch=True)
        log.info("starting weights: %s (%d layers with matching names)", weights, matching)
    else:
        log.info("starting weights: none (training from scratch)")
    model.compile(
        loss={"regression": box_loss(settings.box_loss), "classification": losses.focal()},
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate(settings), clipnorm=OPTIMIZER_CLIPNORM,
                                        use_ema=settings.ema, ema_momentum=settings.ema_momentum),
    )
    return model


def learning_rate(settings):
    """The optimizer's learning rate: constant, or tf.keras's cosine decay over the whole run after a linear
    warm-up of ``warmup_steps`` (built in, so a snapshot's optimizer saves and loads it)."""
    if settings.lr_schedule == "constant":
        return settings.learning_rate
    total = settings.epochs * settings.steps
    warmup = min(settings.warmup_steps, total - 1)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(settings.learning_rate, total, alpha=COSINE_FLOOR)
    return keras.optimizers.schedules.CosineDecay(
        settings.learning_rate * WARMUP_START, total - warmup, alpha=COSINE_FLOOR,
        warmup_target=settings.learning_rate, warmup_steps=warmup)
