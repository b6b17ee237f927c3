"""Frames as points in appearance and time, so that frames chosen for labelling can differ: a frame is a tiny
colour thumbnail (what it looks like: background, lighting, hands) and its timestamp (where it is in its
video), each part scaled to unit spread. The frames_to_label stage spreads a video's first frames over
these points; next_frames measures a candidate's novelty as its distance to the nearest frame known.

The thumbnail, not the detector's own features, tells frames apart: a model trained on a handful of labels
describes frames poorly, which is where choosing matters most (the cold start of active learning; Hacohen et
al., "Active learning on a budget", 2022, take a representation learnt without those labels for the same
reason).
"""
import cv2
import numpy as np

from detflow.lib.cli import InputError

THUMBNAIL_SIZE = (16, 12)
# The time between two videos' frames, in units of spread: far more than any distance within one video, so a
# frame is new against the frames of its own video, and a video with none known yet is the newest of all.
VIDEOS_APART = 100.0


def appearance(image_path):
    """Tiny Lab-colour thumbnail of an image, flattened."""
    image = cv2.imread(str(image_path), cv2.IMREAD_REDUCED_COLOR_4)
    if image is None:
        raise InputError(image_path, "frame is missing or not a readable image")
    small = cv2.resize(image, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2Lab).astype(np.float64).ravel()


def unit_spread(values):
    """Centre ``values`` (n x d) and scale them so that the mean squared distance to the centre is 1."""
    centred = values - values.mean(axis=0)
    spread = np.sqrt(np.mean(np.sum(centred ** 2, axis=1)))
    return centred / spread if spread > 0 else centred


def frame_points(image_paths, seconds, videos=None):
    """One point per frame: its thumbnail and its time, each scaled to unit spread over all the frames; with
    ``videos`` (each frame's video), different videos' times lie VIDEOS_APART from each other."""
    points = np.hstack([unit_spread(np.stack([appearance(path) for path in image_paths])),
                        unit_spread(np.array(seconds, float).reshape(-1, 1))])
    if videos is not None:
        number = {video: index for index, video in enumerate(dict.fromkeys(videos))}
        points[:, -1] += VIDEOS_APART * np.array([number[video] for video in videos])
    return points


def farthest_point_order(points, count):
    """Indices of ``count`` points chosen by farthest-point sampling, starting from point 0."""
    chosen = [0]
    distance = np.linalg.norm(points - points[0], axis=1)
    while len(chosen) < min(count, len(points)):
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.linalg.norm(points - points[best], axis=1))
    return chosen
