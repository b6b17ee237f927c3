"""Predictions: the same detections as keras-retinanet's own calls, annotated
images and videos, CSV and JSON in original pixel coordinates, and bad input
(a model from another configuration, unreadable images, a video that ends
early, nothing detected)."""
import csv
import json
import logging
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from keras_retinanet import models
from keras_retinanet.utils.colors import label_color
from keras_retinanet.utils.image import preprocess_image, read_image_bgr, resize_image

from detflow import predict
from detflow.lib.cli import InputError
from detflow.lib.data.videos import video_id
from detflow.lib.inference import detector as inference
from detflow.lib.inference.drawing import draw_detections
from detflow.lib.inference.events import EventSettings
from detflow.lib.model import retinanet
from detflow.lib.model.card import embed, read_card
from helpers.config import BATCH, EVENTS, config_options
from helpers.media import decoded_frames, truncated_copy, write_video
from helpers.models import BACKBONE, CARD, FEATURE_SIZE, IMAGE_MAX_SIDE, IMAGE_MIN_SIDE, detector, make_inference_model
from helpers.voc import CLASSES, make_voc

NAMES = {label: name for name, label in CLASSES.items()}


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A VOC tree whose val split holds 10 images of several sizes and whose test split is empty
    (the model and model_path fixtures are initialised on its 4 train images)."""
    root = make_voc(tmp_path_factory.mktemp("data") / "voc", train=4, val=10)
    (root / "ImageSets" / "Main" / "test.txt").write_text("")
    return root


def reference_detections(model, image, score_threshold=0.5):
    """keras-retinanet's own inference calls on one BGR image, as in its example:
    preprocess_image (the backbone's mode), resize_image, predict_on_batch, boxes / scale."""
    assert retinanet.backbone(BACKBONE).preprocess_image(image[:2, :2]).tolist() == \
        preprocess_image(image[:2, :2], mode="tf").tolist()  # MobileNet's mode
    network_input = preprocess_image(image, mode="tf")
    network_input, scale = resize_image(network_input, min_side=IMAGE_MIN_SIDE, max_side=IMAGE_MAX_SIDE)
    boxes, scores, labels = model.predict_on_batch(np.expand_dims(network_input, axis=0))
    boxes /= scale
    return [(NAMES[int(label)], float(score), [float(value) for value in box])
            for box, score, label in zip(boxes[0], scores[0], labels[0]) if score >= score_threshold]


def assert_same_detections(ours, reference):
    """Same classes in the same order, scores and boxes equal up to float rounding (batches vs one image)."""
    assert [name for name, _, _ in ours] == [name for name, _, _ in reference]
    for (_, score, box), (_, expected_score, expected_box) in zip(ours, reference):
        assert score == pytest.approx(expected_score, abs=1e-4)
        assert box == pytest.approx(expected_box, abs=0.02)  # CSV/JSON keep 2 decimals


def as_tuples(detections):
    return [(item["class"], item["score"], item["box"]) for item in detections]


def read_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def run_split(model, voc, out, split="val", score_threshold=0.5, batch_size=4):
    return predict.predict_split(detector(model, score_threshold), voc, split, out / "images", out / "detections.csv",
                                 out / "detections.json", batch_size=batch_size)


def test_split_detections_match_keras_retinanet_reference_calls(model, voc, tmp_path):
    content = run_split(model, voc, tmp_path)
    image_ids = (voc / "ImageSets" / "Main" / "val.txt").read_text().split()
    assert [image["image"] for image in content["images"]] == image_ids
    assert len({(image["width"], image["height"]) for image in content["images"]}) > 3  # batches of mixed sizes
    rows = read_rows(tmp_path / "detections.csv")
    assert list(rows[0]) == ["image", "class", "score", "x1", "y1", "x2", "y2"]
    found = 0
    for image in content["images"]:
        original = read_image_bgr(voc / "JPEGImages" / f"{image['image']}.jpg")
        reference = reference_detections(model, original)
        assert_same_detections(as_tuples(image["detections"]), reference)
        csv_detections = [(row["class"], float(row["score"]), [float(row[key]) for key in ("x1", "y1", "x2", "y2")])
                          for row in rows if row["image"] == image["image"]]
        assert_same_detections(csv_detections, reference)
        annotated = cv2.imread(str(tmp_path / "images" / f"{image['image']}.jpg"))
        assert annotated.shape == original.shape  # drawn on the original image, at its size
        assert (image["width"], image["height"]) == (original.shape[1], original.shape[0])
        found += len(reference)
    assert found == len(rows) > 20
    assert set(row["class"] for row in rows) == set(CLASSES)
    on_disk = json.loads((tmp_path / "detections.json").read_text())
    assert on_disk == json.loads(json.dumps(content))
    assert on_disk["detections"] == {name: sum(row["class"] == name for row in rows) for name in CLASSES}
    assert on_disk["unreadable"] == [] and on_disk["images_predicted"] == on_disk["images_listed"] == 10


def test_a_video_with_a_long_non_ascii_name_gets_every_output(model, tmp_path):
    """A name of 125 'é' (250 bytes) used to pass frames, dataset and training, then crash predict_video on
    '<id>.events.json.partial' (File name too long)."""
    video = write_video(tmp_path / "in" / ("é" * 125 + ".mp4"), 6, fps=10)
    out = tmp_path / "predictions"
    name = video_id(video)
    content = predict.predict_video(detector(model), [video], out / f"{name}.mp4", out / f"{name}.csv",
                                    out / f"{name}.json", events_csv=out / f"{name}.events.csv",
                                    events_json=out / f"{name}.events.json", event_settings=EVENTS, stride=1,
                                    batch_size=BATCH)
    assert content["complete"] and content["frames_predicted"] == 6
    assert sorted(path.name[len(name):] for path in out.iterdir()) == [".csv", ".events.csv", ".events.json",
                                                                        ".json", ".mp4"]


def test_video_detections_match_reference_frame_by_frame(model, tmp_path):
    video = write_video(tmp_path / "in" / "my take (1).avi", 20, fps=10)
    content = predict.predict_video(detector(model), [video], tmp_path / "out.mp4", tmp_path / "out.csv",
                                    tmp_path / "out.json", event_settings=EVENTS, stride=3, batch_size=4)
    frames = decoded_frames(video)
    assert [frame["frame_index"] for frame in content["frames"]] == list(range(0, 20, 3))
    assert [frame["timestamp_s"] for frame in content["frames"]] == pytest.approx([i / 10 for i in range(0, 20, 3)])
    for frame in content["frames"]:
        assert_same_detections(as_tuples(frame["detections"]), reference_detections(model, frames[frame["frame_index"]]))
    assert content["video_id"] == "my_take_1" and content["complete"] and content["frames_decoded"] == 20
    rows = read_rows(tmp_path / "out.csv")
    assert list(rows[0]) == ["frame_index", "timestamp_s", "class", "score", "x1", "y1", "x2", "y2"]
    assert len(rows) == sum(len(frame["detections"]) for frame in content["frames"]) > 0
    annotated = decoded_frames(tmp_path / "out.mp4")
    assert len(annotated) == 7 and annotated[0].shape == frames[0].shape
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10 / 3, abs=0.01)  # plays in real time
    assert json.loads((tmp_path / "out.json").read_text())["frames_predicted"] == 7


def test_a_video_s_gesture_events_are_made_of_its_detections(model, tmp_path):
    video = write_video(tmp_path / "take.mp4", 20, fps=10)
    settings = EventSettings(min_frames=2, max_gap=1, track_iou=0.3, merge_iou=0.5)
    content = predict.predict_video(detector(model), [video], tmp_path / "out.mp4", tmp_path / "out.csv",
                                    tmp_path / "out.json", events_csv=tmp_path / "e.csv",
                                    events_json=tmp_path / "e.json", event_settings=settings, stride=1,
                                    batch_size=BATCH)
    events = json.loads((tmp_path / "e.json").read_text())["events"]
    assert len(read_rows(tmp_path / "e.csv")) == len(events) == sum(content["events"].values()) > 0
    assert content["event_settings"] == vars(settings)
    detected = {(frame["frame_index"], item["class"], tuple(item["box"])) for frame in content["frames"]
                for item in frame["detections"]}
    for event in events:  # every box of an event is a detection of its class in that frame
        assert event["frames"] == len(event["boxes"]) >= settings.min_frames
        for frame, *box in event["boxes"]:  # rounded to 0.1 px in the events, 0.01 px in the detections
            assert any(index == frame and name == event["class"] and np.allclose(found, box, atol=0.06)
                       for index, name, found in detected)


def test_boxes_and_captions_in_class_colours():
    image = np.full((240, 320, 3), 128, np.uint8)
    detections = [inference.Detection(0, "grab", 0.93, (40.0, 60.0, 140.0, 200.0)),
                  inference.Detection(1, "drop", 0.61, (200.2, 0.0, 300.0, 100.0))]  # at the top: caption inside
    draw_detections(image, detections)
    for detection in detections:
        colour = list(label_color(detection.label))
        x1, y1, x2, y2 = (int(round(value)) for value in detection.box)
        assert image[(y1 + y2) // 2, x1].tolist() == colour  # left edge of the box
        assert image[(y1 + y2) // 2, x2].tolist() == colour  # right edge
    for label, caption in ((0, image[45:59, 40:85]), (1, image[2:14, 201:245])):  # above; inside, at the top
        pixels = caption.reshape(-1, 3).tolist()
        assert pixels.count(list(label_color(label))) > len(pixels) / 2  # a filled caption box ...
        assert [255, 255, 255] in pixels or [0, 0, 0] in pixels  # ... with black or white text
    assert image[150, 100].tolist() == [128, 128, 128]  # inside stays untouched


def save_model(path, backbone=BACKBONE, feature_size=FEATURE_SIZE, num_classes=2, convert=True):
    model = retinanet.build_retinanet(backbone, num_classes, feature_size)
    (models.convert_model(model) if convert else model).save(str(path), save_format="h5")
    return path


@pytest.mark.parametrize("case, reason", [
    ("width", "its FPN and heads are 32 channels wide, but its description says 16"),
    ("backbone", "is not a RetinaNet on backbone mobilenet128_0.25, as its description says: 58 layers have other "
                 "shapes (e.g. conv1: (3, 3, 3, 16) instead of (3, 3, 3, 8)); its layers look like a MobileNet backbone"),
    ("classes", "predicts 3 classes, but its description names 2"),
    ("training model", "is a training model"),
    ("not a model", "cannot be loaded as a keras-retinanet model"),
])
def test_model_that_is_not_what_its_description_says_is_refused(tmp_path, case, reason):
    path = tmp_path / "model.h5"
    if case == "width":
        save_model(path, feature_size=32)
    elif case == "backbone":
        save_model(path, backbone="mobilenet128_0.5")
    elif case == "classes":
        save_model(path, num_classes=3)
    elif case == "training model":
        save_model(path, convert=False)
    else:
        path.write_text("not a model")
    with pytest.raises(InputError) as error:
        inference.load_inference_model(path, CARD)
    assert error.value.where == str(path)
    assert reason in error.value.reason
    if case == "not a model":  # and how to get the workflow's model back
        assert error.value.reason.endswith("written again from the chosen snapshot by "
                                           "`snakemake --cores all --forcerun convert`")


def test_a_folder_given_as_the_model_is_named_as_a_folder(tmp_path):
    """It used to be called "no model here yet (file not found or empty)"."""
    with pytest.raises(InputError) as error:
        read_card(tmp_path)
    assert str(error.value) == (f"{tmp_path}: is a folder, not a model file: give the inference model (.h5), or "
                                "run an export folder with --runtime tf, onnx or tflite")


def test_command_line_names_the_model_and_the_reason(voc, tmp_path):
    wrong = save_model(tmp_path / "wide.h5", feature_size=24)
    embed(wrong, CARD)  # a description that does not belong to the file
    result = subprocess.run(
        [sys.executable, "-m", "detflow.predict", "images", str(wrong), str(voc), "val", "--out-dir", str(tmp_path / "o"),
         "--csv", str(tmp_path / "d.csv"), "--json", str(tmp_path / "d.json"), "--classes", str(voc / "classes.json"),
         "--backbone", BACKBONE, "--feature-size", str(FEATURE_SIZE), "--threads", "1",
         *config_options("predict", "score_threshold", "batch_size")],
        capture_output=True, text=True)
    assert result.returncode == 1
    assert f"error: {wrong}: its FPN and heads are 24 channels wide, but its description says 16" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d.csv").exists()


def test_unreadable_images_are_reported_and_the_others_done(model, voc, tmp_path, caplog):
    broken = tmp_path / "voc"
    shutil.copytree(voc, broken)
    (broken / "JPEGImages" / "val_002.jpg").write_bytes(b"not a JPEG at all")
    whole = (broken / "JPEGImages" / "val_005.jpg").read_bytes()
    (broken / "JPEGImages" / "val_005.jpg").write_bytes(whole[:len(whole) // 3])  # cut short
    (broken / "JPEGImages" / "val_007.jpg").unlink()
    expected = run_split(model, voc, tmp_path / "whole")
    with caplog.at_level(logging.WARNING, logger="detflow.predict"):
        content = run_split(model, broken, tmp_path / "out")
    assert [item["image"] for item in content["unreadable"]] == ["val_002", "val_005", "val_007"]
    assert all(item["reason"] and item["file"].endswith(f"{item['image']}.jpg") for item in content["unreadable"])
    assert sum("skipped" in message and "val_005.jpg" in message for message in caplog.messages) == 1
    readable = [image for image in expected["images"] if image["image"] not in ("val_002", "val_005", "val_007")]
    assert content["images"] == readable and content["images_predicted"] == 7
    assert sorted(path.stem for path in (tmp_path / "out" / "images").iterdir()) == [image["image"] for image in readable]
    for image_id in ("val_002", "val_005", "val_007"):
        assert not any(row["image"] == image_id for row in read_rows(tmp_path / "out" / "detections.csv"))


def test_split_with_no_readable_image_is_an_error(model, voc, tmp_path):
    broken = tmp_path / "voc"
    shutil.copytree(voc, broken)
    for path in (broken / "JPEGImages").glob("val_*.jpg"):
        path.write_bytes(b"")
    with pytest.raises(InputError) as error:
        run_split(model, broken, tmp_path / "out")
    assert "none of the 10 images of the val split can be read" in error.value.reason


def test_video_that_ends_early_is_annotated_up_to_its_end(model, tmp_path, caplog):
    whole = write_video(tmp_path / "whole.avi", 40)
    cut = truncated_copy(whole, tmp_path / "cut.avi", 0.5)
    with caplog.at_level(logging.WARNING, logger="detflow.predict"):
        content = predict.predict_video(detector(model), [cut], tmp_path / "cut.mp4", tmp_path / "cut.csv",
                                        tmp_path / "cut.json", event_settings=EVENTS, stride=2, batch_size=BATCH)
    assert content["frames_declared"] == 40 and 5 < content["frames_decoded"] < 30
    assert not content["complete"]
    assert content["frames_predicted"] == len(range(0, content["frames_decoded"], 2))
    assert len(decoded_frames(tmp_path / "cut.mp4")) == content["frames_predicted"]
    assert any("decoding stopped at frame" in message for message in caplog.messages)
    with pytest.raises(InputError, match="not a video OpenCV can read"):
        predict.predict_video(detector(model), [truncated_copy(write_video(tmp_path / "w.mp4", 10), tmp_path / "c.mp4")],
                              tmp_path / "c_out.mp4", tmp_path / "c.csv", tmp_path / "c.json", event_settings=EVENTS,
                              stride=1, batch_size=BATCH)


def test_nothing_detected_anywhere_still_writes_every_output(model, voc, tmp_path):
    content = run_split(model, voc, tmp_path / "split", score_threshold=1.0)
    assert content["images_with_detections"] == 0 and content["detections"] == {"grab": 0, "drop": 0}
    assert all(image["detections"] == [] for image in content["images"]) and len(content["images"]) == 10
    assert (tmp_path / "split" / "detections.csv").read_text().splitlines() == ["image,class,score,x1,y1,x2,y2"]
    assert len(list((tmp_path / "split" / "images").glob("*.jpg"))) == 10
    video = write_video(tmp_path / "clip.avi", 6)
    clip = predict.predict_video(detector(model, 1.0), [video], tmp_path / "clip.mp4", tmp_path / "clip.csv",
                                 tmp_path / "clip.json", event_settings=EVENTS, stride=1, batch_size=BATCH)
    assert clip["frames_with_detections"] == 0 and clip["frames_predicted"] == 6
    assert len(decoded_frames(tmp_path / "clip.mp4")) == 6


def test_empty_split_gives_empty_outputs(model, voc, tmp_path):
    content = run_split(model, voc, tmp_path, split="test")
    assert content["images_listed"] == 0 and content["images"] == []
    assert (tmp_path / "detections.csv").read_text() == "image,class,score,x1,y1,x2,y2\n"
    assert (tmp_path / "images").is_dir()


def test_an_error_while_reading_reaches_the_caller(model, voc):
    def frames():
        for index in range(5):
            if index == 3:
                raise OSError("the camera went away")
            yield index, read_image_bgr(voc / "JPEGImages" / f"val_{index:03d}.jpg")

    seen = []
    with pytest.raises(OSError, match="the camera went away"):
        for key, _, detections in inference.detect_stream(detector(model), frames(), batch_size=2):
            seen.append(key)
    assert seen in ([0, 1], [0, 1, 2])  # in order; whatever was still waiting for its batch is not yielded


def predict_command(model, voc, tmp_path, *options):
    return subprocess.run(
        [sys.executable, "-m", "detflow.predict", "images", str(model), str(voc), "val", "--out-dir",
         str(tmp_path / "o"), "--csv", str(tmp_path / "d.csv"), "--json", str(tmp_path / "d.json"), "--threads", "1",
         *config_options("predict", "score_threshold", "batch_size"), *options], capture_output=True, text=True)


def test_the_model_says_how_it_sees_images_so_predicting_by_hand_needs_no_model_options(model, model_path, voc,
                                                                                          tmp_path):
    """No --backbone or image sizes: the model's own description gives them, so a prediction by hand
    resizes as training did (before, the command line's defaults silently resized to 800/1333 px)."""
    result = predict_command(model_path, voc, tmp_path)
    assert result.returncode == 0, result.stderr
    by_hand = json.loads((tmp_path / "d.json").read_text())
    expected = predict.predict_split(detector(model), voc, "val", tmp_path / "again", tmp_path / "a.csv",
                                     tmp_path / "a.json", batch_size=BATCH)
    assert by_hand["images"] == expected["images"] and by_hand["classes"] == list(CLASSES)
    card = read_card(model_path)
    assert (card.backbone, card.feature_size, card.image_min_side, card.image_max_side, card.classes) == (
        BACKBONE, FEATURE_SIZE, IMAGE_MIN_SIDE, IMAGE_MAX_SIDE, ("grab", "drop"))


@pytest.mark.parametrize("option, value, shown", [
    ("--image-min-side", "800", "--image-min-side 800 disagrees with the model, which has image_min_side 96"),
    ("--backbone", "resnet50", "--backbone resnet50 disagrees with the model, which has backbone mobilenet128_0.25"),
    ("--feature-size", "256", "--feature-size 256 disagrees with the model, which has feature_size 16"),
])
def test_options_that_describe_the_model_must_agree_with_it(model_path, voc, tmp_path, option, value, shown):
    result = predict_command(model_path, voc, tmp_path, option, value)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {model_path}: {shown}; leave the option out (the model says it)" in result.stderr
    assert not (tmp_path / "d.csv").exists()


def test_a_model_trained_on_other_classes_of_the_same_number_is_refused_with_both_lists(voc, tmp_path):
    """The bug this prevents: a grab/drop/wave model swapped into a run with three other classes
    predicted with exit 0 and gave its detections the wrong names."""
    other = make_inference_model(tmp_path / "other.h5", sorted((voc / "JPEGImages").glob("train_*.jpg"))[:2],
                                 classes=("wave", "point"))
    result = predict_command(other, voc, tmp_path, "--classes", str(voc / "classes.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"error: {other}: was trained on the classes wave, point (in label order), but the dataset "
            f"({voc / 'classes.json'}) has grab, drop: its detections would get the wrong names") in result.stderr


def test_a_model_without_its_description_is_refused(voc, tmp_path):
    bare = save_model(tmp_path / "bare.h5")
    result = predict_command(bare, voc, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {bare}: carries no description of itself (backbone, classes, image sizes)" in result.stderr
