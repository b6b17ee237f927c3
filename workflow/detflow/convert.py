"""Conversion stage: the chosen training snapshot becomes an inference model
with keras-retinanet's ``convert_model``, which appends box regression,
clipping and detection filtering (NMS, score threshold, max detections) to the
training model. Works for every backbone and FPN/head width: the snapshot
carries its own architecture.

The inference model carries its own description (:mod:`detflow.lib.model.card`),
written into the file before it is renamed into place: backbone, FPN width,
class names in label order and image sizes from ``best.json``, the training run
and epoch it comes from, and the detection settings.
"""
import argparse
import json
import logging
from pathlib import Path

from keras_retinanet import models

from detflow.lib.cli import InputError, parse_bool, run
from detflow.lib.files import replacing
from detflow.lib.model import retinanet
from detflow.lib.model.card import ModelCard, embed

log = logging.getLogger(__name__)


def load_training_model(snapshot, backbone):
    """A training snapshot loaded with keras_retinanet.models.load_model, or a clear error."""
    try:
        model = retinanet.load_model(snapshot, backbone)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(snapshot, f"cannot be loaded as a {backbone} RetinaNet snapshot ({error})")
    try:
        models.assert_training_model(model)
    except AssertionError as error:
        raise InputError(snapshot, str(error))
    return model


def model_card(best, detection):
    """The inference model's description, from best.json's account of the chosen snapshot."""
    classes = sorted(best["classes"], key=best["classes"].get)
    training = {key: best.get(key) for key in ("variant", "training_run", "epoch", "metric", "value", "snapshot")}
    return ModelCard(backbone=best["backbone"], feature_size=best["feature_size"], classes=tuple(classes),
                     image_min_side=best["image_min_side"], image_max_side=best["image_max_side"],
                     training=training, detection=detection, head_norm=best.get("head_norm", "none"))


def convert(snapshot, best_json, inference_model, *, nms, nms_threshold, score_threshold, max_detections):
    """Write ``inference_model`` (.h5) from the training ``snapshot`` described by ``best_json``."""
    best = json.loads(Path(best_json).read_text())
    model = load_training_model(snapshot, best["backbone"])
    width = retinanet.feature_size_of(model)
    if width != best["feature_size"]:
        raise InputError(snapshot, f"has {width}-wide FPN and heads, but {best_json} says {best['feature_size']}")
    inference = models.convert_model(
        model, nms=nms, nms_threshold=nms_threshold, score_threshold=score_threshold, max_detections=max_detections
    )
    detection = {"nms": nms, "nms_threshold": nms_threshold, "score_threshold": score_threshold,
                 "max_detections": max_detections}
    inference_model = Path(inference_model)
    inference_model.parent.mkdir(parents=True, exist_ok=True)
    with replacing(inference_model) as partial:
        # No optimizer or compile state: this model only predicts.
        inference.save(partial, save_format="h5", include_optimizer=False)
        embed(partial, model_card(best, detection))
    log.info("inference model %s: %s backbone, FPN width %d, epoch %d, nms=%s (IoU %.2f), score >= %.2f, "
             "at most %d detections", inference_model, best["backbone"], width, best["epoch"], nms, nms_threshold,
             score_threshold, max_detections)
    return inference_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", help="the training snapshot (.h5) to convert")
    parser.add_argument("best_json", help="best.json of the best-snapshot stage (backbone, FPN width)")
    parser.add_argument("inference_model", help="where to write the inference model (.h5)")
    parser.add_argument("--nms", type=parse_bool, required=True, help="non-maximum suppression per class")
    parser.add_argument("--nms-threshold", type=float, required=True, help="IoU above which NMS suppresses a box")
    parser.add_argument("--score-threshold", type=float, required=True, help="lowest score the model returns")
    parser.add_argument("--max-detections", type=int, required=True, help="most boxes per image")
    args = parser.parse_args(argv)
    convert(args.snapshot, args.best_json, args.inference_model, nms=args.nms, nms_threshold=args.nms_threshold,
            score_threshold=args.score_threshold, max_detections=args.max_detections)


if __name__ == "__main__":
    run(main)
