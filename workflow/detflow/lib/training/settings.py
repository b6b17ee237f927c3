"""The settings of a training run: config.yaml's ``train`` section, which is their one source.

Each field says what it is, once: its type (a ``Literal`` lists the allowed
values), a line of help, the smallest value it may take, and whether it changes
what an epoch computes (``fingerprinted``: a run may resume with other values of
those that do not). The training stage's command line has one required option
per field (``--learning-rate``), derived from these fields.
"""
from dataclasses import dataclass, field, fields
from typing import Literal


def setting(help, *, minimum=None, fingerprinted=True):
    """A field of Settings with its description (no default: config gives every value)."""
    return field(metadata={"help": help, "minimum": minimum, "fingerprinted": fingerprinted})


@dataclass
class Settings:
    """The training options (see config.yaml's ``train`` section for each)."""

    backbone: str = setting("a keras-retinanet backbone, e.g. mobilenet224_1.0")
    weights: str = setting("none, or a .h5 weights file (e.g. the ImageNet weights the weights stage fetched)")
    feature_size: int = setting("FPN and head width", minimum=1)
    epochs: int = setting("number of epochs", minimum=1, fingerprinted=False)
    steps: int = setting("batches per epoch", minimum=1)
    batch_size: int = setting("images per batch", minimum=1)
    learning_rate: float = setting("Adam's learning rate (the peak, with a schedule)")
    lr_schedule: Literal["constant", "cosine"] = setting("learning-rate schedule")
    warmup_steps: int = setting("steps of linear warm-up (cosine only)", minimum=0)
    ema: bool = setting("validate, snapshot and export an exponential moving average of the weights")
    ema_momentum: float = setting("weight of the old average at each step")
    box_loss: Literal["smooth_l1", "giou"] = setting("box regression loss")
    head_norm: Literal["none", "group"] = setting("normalisation in the regression and classification heads")
    image_min_side: int = setting("shorter image side", minimum=1)
    image_max_side: int = setting("longer image side at most", minimum=1)
    augment: bool = setting("random translation, scale, flips and colour effects")
    rotate_shear: bool = setting("also random rotation and shear (their boxes are looser than the objects)")
    flip_vertical: bool = setting("also random upside-down flips")
    freeze_backbone: bool = setting("keep the backbone's weights fixed")
    patience: int = setting("stop after this many epochs without a better validation mAP; 0 = never", minimum=0,
                            fingerprinted=False)
    keep_best: int = setting("snapshots kept besides the last, by each selection metric", minimum=1,
                             fingerprinted=False)
    seed: int = setting("seed of initialisation, shuffling and augmentation")
    min_free_mb: int = setting("disk space a snapshot must leave, in MB", minimum=0, fingerprinted=False)

    @classmethod
    def from_config(cls, train):
        """The settings of a ``train`` section (or one variant's), ignoring the job's resources and variants."""
        return cls(**{item.name: train[item.name] for item in fields(cls)})

    def fingerprinted(self):
        """{name: value} of the settings that change what an epoch computes."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.metadata["fingerprinted"]}

