"""Conversion stage: a training snapshot becomes an inference model with
keras-retinanet's convert_model; a fresh process loads it with
keras_retinanet.models.load_model and gets boxes, scores and labels."""
import json
import subprocess
import sys

import pytest

from detflow import convert
from detflow.lib.cli import InputError
from detflow.lib.model.card import ModelCard, read_card
from detflow.lib.training.model import new_model
from detflow.lib.training.settings import Settings
from helpers.config import CONFIG
from helpers.models import TINY_SETTINGS
from helpers.voc import CLASSES, make_voc

BACKBONE = "mobilenet128_0.25"

# Run in a fresh process, as the prediction stage will: keras-retinanet through detflow.lib.model.retinanet.
PREDICT = """
import json, sys
from detflow.lib.model import retinanet
from keras_retinanet.utils.image import read_image_bgr, resize_image

path, backbone, image_path = sys.argv[1:]
model = retinanet.load_model(path, backbone)
raw = read_image_bgr(image_path)
image, scale = resize_image(retinanet.backbone(backbone).preprocess_image(raw), min_side=96, max_side=128)
boxes, scores, labels = model.predict_on_batch(image[None])[:3]
print(json.dumps({
    "image": raw.shape[:2], "boxes": (boxes[0] / scale).tolist(), "scores": scores[0].tolist(),
    "labels": labels[0].tolist(), "filter": model.get_layer("filtered_detections").get_config(),
    "feature_size": retinanet.feature_size_of(model),
}))
"""


def write_snapshot(tmp_path, feature_size):
    """A snapshot as the training stage writes it (compiled training model, .h5) and its best.json."""
    settings = Settings(**{**TINY_SETTINGS, "backbone": BACKBONE, "feature_size": feature_size})
    model = new_model(settings, num_classes=2)
    snapshot = tmp_path / f"{BACKBONE}_pascal_01.h5"
    model.save(snapshot, save_format="h5")
    best = tmp_path / "best.json"
    best.write_text(json.dumps(best_json(feature_size)))
    return snapshot, best


def best_json(feature_size, **changes):
    """What the best-snapshot stage writes about the chosen snapshot."""
    return {"backbone": BACKBONE, "feature_size": feature_size, "epoch": 1, "classes": CLASSES, "image_min_side": 96,
            "image_max_side": 128, "variant": "small", "training_run": "f00d", "metric": "mAP", "value": 0.5,
            "snapshot": "s.h5", **changes}


@pytest.mark.parametrize("feature_size", [16, 256])
def test_inference_model_loads_in_a_fresh_process_and_detects(tmp_path, feature_size):
    snapshot, best = write_snapshot(tmp_path, feature_size)
    inference = tmp_path / "model" / "inference.h5"
    # An untrained head scores every anchor about 0.01 (its prior): a threshold under it returns boxes.
    convert.main([str(snapshot), str(best), str(inference), "--nms", "true", "--nms-threshold", "0.3",
                  "--score-threshold", "0.001", "--max-detections", "7"])
    image = make_voc(tmp_path / "voc", train=1, val=0) / "JPEGImages" / "train_000.jpg"
    result = subprocess.run([sys.executable, "-c", PREDICT, str(inference), BACKBONE, str(image)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    detections = json.loads(result.stdout.strip().splitlines()[-1])
    assert detections["feature_size"] == feature_size
    assert (detections["filter"]["nms"], detections["filter"]["nms_threshold"]) == (True, pytest.approx(0.3))
    assert detections["filter"]["score_threshold"] == pytest.approx(0.001)
    assert detections["filter"]["max_detections"] == 7
    assert read_card(inference) == ModelCard(
        backbone=BACKBONE, feature_size=feature_size, classes=("grab", "drop"), image_min_side=96, image_max_side=128,
        training={"variant": "small", "training_run": "f00d", "epoch": 1, "metric": "mAP", "value": 0.5,
                  "snapshot": "s.h5"},
        detection={"nms": True, "nms_threshold": 0.3, "score_threshold": 0.001, "max_detections": 7})
    scores, labels, boxes = detections["scores"], detections["labels"], detections["boxes"]
    assert len(scores) == len(labels) == len(boxes) == 7
    assert all(score > 0.001 for score in scores) and scores == sorted(scores, reverse=True)
    assert set(labels) <= {0, 1}
    height, width = detections["image"]
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 <= x2 <= width + 1e-3 and 0 <= y1 <= y2 <= height + 1e-3


def test_a_corrupt_snapshot_is_a_clear_error(tmp_path):
    snapshot = tmp_path / "broken.h5"
    snapshot.write_bytes(b"not an HDF5 file")
    best = tmp_path / "best.json"
    best.write_text(json.dumps(best_json(16)))
    with pytest.raises(InputError, match=f"cannot be loaded as a {BACKBONE} RetinaNet snapshot") as error:
        convert.convert(snapshot, best, tmp_path / "inference.h5", **CONFIG["convert"])
    assert error.value.where == str(snapshot)
    assert not (tmp_path / "inference.h5").exists()


def test_a_width_other_than_best_json_says_is_refused(tmp_path):
    snapshot, best = write_snapshot(tmp_path, 16)
    best.write_text(json.dumps(best_json(64)))
    with pytest.raises(InputError, match="has 16-wide FPN and heads, but .* says 64"):
        convert.convert(snapshot, best, tmp_path / "inference.h5", **CONFIG["convert"])


def test_an_inference_model_is_not_a_snapshot(tmp_path):
    snapshot, best = write_snapshot(tmp_path, 16)
    inference = tmp_path / "inference.h5"
    convert.convert(snapshot, best, inference, **CONFIG["convert"])
    with pytest.raises(InputError, match="Input is not a training model"):
        convert.convert(inference, best, tmp_path / "again.h5", **CONFIG["convert"])
