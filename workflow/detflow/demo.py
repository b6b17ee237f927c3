"""The embedded demo: short synthetic gesture videos with per-frame ground truth.

Each video is a few scenes of 2.5-4.5 s; each scene shows one or two drawn
hands (palm, wrist, sleeve, fingers and thumb) that move, scale and rotate
over its own textured, slowly panning background under changing light. A
hand's pose is its class: by default ``grab`` is a closed fist and ``drop`` an
open hand with spread fingers; further class names get other finger poses
(pointing, victory, ...), so classes always differ by shape, not by colour. Backgrounds, skin tones, sleeves, lighting, motion and
the order of gestures differ from scene to scene, drawn from one seeded random
generator per video (config seed + video index): the same settings always give
the same videos and the same boxes.

Ground truth is one CSV row per visible hand per frame,
``frame_index,class,xmin,ymin,xmax,ymax``, in 0-based pixel indices of the
first and last hand pixel (inclusive), tight around the drawn hand (sleeve
excluded) and clipped to the frame (:mod:`detflow.lib.data.gesture_truth`). The
demo's labeller, :mod:`detflow.demo_labeller`, turns the rows of the frames
chosen for labelling into labelImg-style Pascal VOC files.
"""
import argparse
import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.cli import InputError, prog, run
from detflow.lib.data.gesture_truth import TRUTH_COLUMNS

log = logging.getLogger(__name__)


# Which fingers are stretched out: thumb, index, middle, ring, little.
POSES = {
    "fist": (0, 0, 0, 0, 0),
    "open": (1, 1, 1, 1, 1),
    "point": (0, 1, 0, 0, 0),
    "victory": (0, 1, 1, 0, 0),
    "thumb": (1, 0, 0, 0, 0),
    "three": (0, 1, 1, 1, 0),
    "horns": (0, 1, 0, 0, 1),
    "call": (1, 0, 0, 0, 1),
    "pinch": (1, 1, 0, 0, 0),
    "four": (0, 1, 1, 1, 1),
}
NAMED_POSES = {"grab": "fist", "drop": "open"}

# Hand geometry in hand units (wrist to middle fingertip is about 1; x right,
# y down, palm centre near the origin), for a right hand seen from the back.
FINGER_BASES_X = (-0.135, -0.045, 0.045, 0.135)
FINGER_WIDTHS = (0.088, 0.094, 0.088, 0.076)
FINGER_LENGTHS = (0.40, 0.46, 0.42, 0.33)
FINGER_SPREAD_DEG = (-15.0, -5.0, 5.0, 15.0)
SKIN_TONES_BGR = (
    (185, 205, 245), (160, 185, 230), (135, 170, 220), (110, 150, 205),
    (85, 125, 180), (65, 100, 150), (50, 75, 120), (40, 58, 95),
)
MIN_CONTRAST = 45  # grey levels between a scene's main colour and its skin tone
SLEEVE_COLOURS_BGR = (
    (40, 40, 40), (140, 90, 40), (60, 40, 150), (60, 120, 60), (200, 200, 200),
    (90, 60, 30), (120, 120, 120), (40, 30, 110), (150, 150, 60), (30, 80, 170),
)


def poses_for_classes(classes):
    """Map each class name to a pose: grab/drop by meaning, other names to unused poses in order."""
    if len(classes) < 2:
        raise InputError("config: classes", "the demo needs at least two classes")
    taken = {NAMED_POSES[name] for name in classes if name in NAMED_POSES}
    spare = iter(pose for pose in POSES if pose not in taken)
    mapping = {}
    for name in classes:
        pose = NAMED_POSES.get(name) or next(spare, None)
        if pose is None:
            raise InputError("config: classes", f"the demo can draw at most {len(POSES)} distinct hand poses")
        mapping[name] = pose
    return mapping


def _capsule(start, end, width, points=10):
    """Polygon of a stroke with round ends (a finger), in hand units."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = end - start
    angle = np.arctan2(direction[1], direction[0])
    radius = width / 2
    cap_end = angle + np.linspace(-np.pi / 2, np.pi / 2, points)
    cap_start = angle + np.linspace(np.pi / 2, 3 * np.pi / 2, points)
    return np.concatenate([
        end + radius * np.stack([np.cos(cap_end), np.sin(cap_end)], axis=1),
        start + radius * np.stack([np.cos(cap_start), np.sin(cap_start)], axis=1),
    ])


def _rounded_rect(centre, half_width, half_height, radius, points=6):
    cx, cy = centre
    corners = ((half_width - radius, half_height - radius, 0), (-(half_width - radius), half_height - radius, 90),
               (-(half_width - radius), -(half_height - radius), 180), (half_width - radius, -(half_height - radius), 270))
    outline = []
    for dx, dy, start in corners:
        angles = np.radians(np.linspace(start, start + 90, points))
        outline.append(np.stack([cx + dx + radius * np.cos(angles), cy + dy + radius * np.sin(angles)], axis=1))
    return np.concatenate(outline)


@dataclass(frozen=True)
class HandShape:
    """Skin polygons, crease lines (drawn darker) and the sleeve polygon of one pose, in hand units."""

    skin: tuple
    creases: tuple
    sleeve: np.ndarray


def hand_shape(pose, spread, finger_scale):
    """The polygons of a hand in ``pose``; ``spread`` widens the finger fan, ``finger_scale`` lengthens fingers."""
    thumb_out, *fingers_out = POSES[pose]
    skin = [_rounded_rect((0.0, 0.18), 0.21, 0.22, 0.09), _rounded_rect((0.0, 0.43), 0.14, 0.08, 0.04)]
    creases = []
    curled = []
    for base_x, width, length, angle, out in zip(FINGER_BASES_X, FINGER_WIDTHS, FINGER_LENGTHS, FINGER_SPREAD_DEG, fingers_out):
        if out:
            angle = np.radians(angle * spread)
            tip = (base_x + length * finger_scale * np.sin(angle), -0.02 - length * finger_scale * np.cos(angle))
            skin.append(_capsule((base_x, 0.02), tip, width))
        else:
            skin.append(_capsule((base_x, 0.02), (base_x, -0.07), width * 1.2))
            curled.append(base_x)
    # Grooves between neighbouring curled fingers and the fold line across them.
    for left, right in zip(curled, curled[1:]):
        if right - left < 0.1:
            middle = (left + right) / 2
            creases.append(((middle, -0.1), (middle, 0.04)))
    if curled:
        creases.append(((min(curled) - 0.04, 0.08), (max(curled) + 0.04, 0.08)))
    if thumb_out:
        angle = np.radians(-50.0 * min(spread, 1.4))
        tip = (-0.17 + 0.32 * finger_scale * np.sin(angle), 0.24 - 0.32 * finger_scale * np.cos(angle))
        skin.append(_capsule((-0.15, 0.30), tip, 0.11))
    else:
        skin.append(_capsule((-0.23, 0.22), (0.03, 0.10), 0.12))
        creases.append(((-0.2, 0.26), (0.05, 0.15)))
    sleeve = np.array([(-0.19, 0.47), (0.19, 0.47), (0.26, 3.0), (-0.26, 3.0)])
    return HandShape(tuple(skin), tuple(creases), sleeve)


def _smooth_curve(rng, frames, fps, low, high, periods=(2.0, 7.0)):
    """A smooth random signal in [low, high] over ``frames`` frames: two sinusoids of random period and phase."""
    t = np.arange(frames) / fps
    signal = np.zeros(frames)
    for weight in (0.65, 0.35):
        period = rng.uniform(*periods)
        signal += weight * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return low + (high - low) * (signal + 1) / 2


def _gesture_timeline(rng, frames, fps, classes):
    """Class of a hand at each frame: gestures held 1-3 s, every class shown in turn."""
    labels = []
    order = list(rng.permutation(len(classes)))
    while len(labels) < frames:
        if not order:
            order = list(rng.permutation(len(classes)))
        labels += [classes[order.pop()]] * int(rng.uniform(1.0, 3.0) * fps)
    return labels[:frames]


def _visibility(rng, frames, fps, present_fraction, shown_seconds=3.0):
    """Frames in which a hand is in view: stretches of about ``shown_seconds`` in view, then out of view,
    so that it is in view about ``present_fraction`` of the time."""
    hidden_seconds = shown_seconds * (1 - present_fraction) / present_fraction
    visible = np.zeros(frames, bool)
    position = 0
    shown = rng.random() < present_fraction
    while position < frames:
        length = max(int(rng.uniform(0.5, 1.5) * (shown_seconds if shown else hidden_seconds) * fps), 1)
        visible[position:position + length] = shown
        position += length
        shown = not shown
    return visible


@dataclass
class HandTrack:
    """Per-frame state of one hand: in view, class, centre, size, angle and mirroring."""

    visible: np.ndarray
    labels: list
    centre_x: np.ndarray
    centre_y: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    mirrored: bool
    skin: np.ndarray
    sleeve: np.ndarray
    spread: float
    finger_scale: float


def plan_hands(rng, frames, fps, width, height, classes, skin_tone):
    """One or two hand tracks over a scene; the first is always in view but for a short gap now and then."""
    two_hands = rng.random() < 0.7
    regions = ((0.18, 0.45), (0.55, 0.82)) if two_hands else ((0.25, 0.75),)
    tracks = []
    for number, (left, right) in enumerate(regions):
        tracks.append(HandTrack(
            visible=np.ones(frames, bool) if number == 0 else _visibility(rng, frames, fps, 0.6),
            labels=_gesture_timeline(rng, frames, fps, classes),
            centre_x=_smooth_curve(rng, frames, fps, left * width, right * width),
            centre_y=_smooth_curve(rng, frames, fps, 0.32 * height, 0.62 * height),
            scale=_smooth_curve(rng, frames, fps, 0.28 * height, 0.52 * height, periods=(3.0, 9.0)),
            angle=_smooth_curve(rng, frames, fps, -1, 1) * rng.uniform(15, 40) + rng.uniform(-10, 10),
            mirrored=(number == 0) if two_hands else bool(rng.random() < 0.5),
            skin=np.clip(skin_tone * rng.uniform(0.92, 1.08, 3), 0, 255),
            sleeve=np.array(SLEEVE_COLOURS_BGR[rng.integers(len(SLEEVE_COLOURS_BGR))], float),
            spread=rng.uniform(1.1, 1.6),
            finger_scale=rng.uniform(0.92, 1.08),
        ))
    if frames > 2 * fps and rng.random() < 0.2:
        gap_start = rng.integers(0, frames - fps)
        for track in tracks:
            track.visible[gap_start:gap_start + int(rng.uniform(0.4, 1.0) * fps)] = False
    return tracks


def _noise_layer(rng, height, width, cells, colours=3):
    small = rng.random((max(cells * height // width, 2), cells, colours)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, colours)


def _luminance(bgr):
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def _colour_unlike(rng, skin_tone):
    """A random colour whose brightness differs from the skin tone's by at least MIN_CONTRAST."""
    while True:
        colour = rng.uniform(40, 220, 3)
        if abs(_luminance(colour) - _luminance(skin_tone)) >= MIN_CONTRAST:
            return colour


def make_background(rng, width, height, skin_tone):
    """A textured scene larger than the frame (the camera pans over it), as float32 BGR 0-255.

    Its main colours differ from the skin tone in brightness, so hands stand out (as
    they do where people film gestures on purpose); its texture may still come close.
    """
    kind = rng.integers(4)
    base = _colour_unlike(rng, skin_tone)
    if kind == 0:  # blurred colour noise at several scales
        image = sum(weight * _noise_layer(rng, height, width, cells)
                    for weight, cells in ((0.55, 3), (0.3, 9), (0.15, 30)))
        image = base + (image - 0.5) * rng.uniform(80, 160)
    elif kind == 1:  # a room: wall, floor and furniture-like boxes
        image = np.empty((height, width, 3), np.float32)
        image[:] = base
        floor = int(height * rng.uniform(0.6, 0.85))
        image[floor:] = rng.uniform(30, 200, 3)
        for _ in range(rng.integers(3, 9)):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            size = rng.uniform(0.1, 0.4) * np.array([width, height])
            colour = rng.uniform(20, 235, 3)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + size[0]), int(y0 + size[1])), colour.tolist(), -1)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + size[0]), int(y0 + size[1])), (colour * 0.6).tolist(), 2)
        image += (_noise_layer(rng, height, width, 12) - 0.5) * 50
    elif kind == 2:  # stripes: wood, fabric, blinds
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.06, 0.2) * height
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        waves = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period
                       + 3 * _noise_layer(rng, height, width, 6, 1)[..., 0])
        image = base + (_colour_unlike(rng, skin_tone) - base) * ((waves[..., None] + 1) / 2)
    else:  # tiles with grout lines
        tile = int(rng.uniform(0.08, 0.25) * height) + 4
        image = np.empty((height, width, 3), np.float32)
        for y in range(0, height, tile):
            for x in range(0, width, tile):
                image[y:y + tile, x:x + tile] = np.clip(base + rng.normal(0, 18, 3), 0, 255)
        grout = rng.uniform(20, 230, 3).tolist()
        for position in range(0, max(width, height), tile):
            cv2.line(image, (position, 0), (position, height), grout, 2)
            cv2.line(image, (0, position), (width, position), grout, 2)
    image += rng.normal(0, rng.uniform(2, 8), image.shape).astype(np.float32)  # fine grain
    return np.clip(image, 0, 255).astype(np.float32)


def _hand_transform(centre_x, centre_y, scale, angle_deg, mirrored):
    """2x3 matrix from hand units to frame pixels."""
    angle = np.radians(angle_deg)
    flip = -1.0 if mirrored else 1.0
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[cos * flip, -sin, centre_x], [sin * flip, cos, centre_y]])


def _keep_in_frame(shape, matrix, width, height, outside=0.2):
    """Shift a hand so that at most ``outside`` of its width and height leaves the frame."""
    pixels = _to_pixels(np.concatenate(shape.skin), matrix)
    (left, top), (right, bottom) = pixels.min(axis=0), pixels.max(axis=0)
    slack_x, slack_y = outside * (right - left), outside * (bottom - top)
    shift_x = max(-slack_x - left, 0) - max(right - (width - 1 + slack_x), 0)
    shift_y = max(-slack_y - top, 0) - max(bottom - (height - 1 + slack_y), 0)
    shifted = matrix.copy()
    shifted[:, 2] += (shift_x, shift_y)
    return shifted


def _side_by_side(shapes, matrices, gap):
    """Move a left and a right hand apart sideways (in place) until ``gap`` pixels separate their outlines."""
    left_edge = _to_pixels(np.concatenate(shapes[0].skin), matrices[0])[:, 0].max()
    right_edge = _to_pixels(np.concatenate(shapes[1].skin), matrices[1])[:, 0].min()
    overlap = left_edge + gap - right_edge
    if overlap > 0:
        matrices[0][0, 2] -= overlap / 2
        matrices[1][0, 2] += overlap / 2


def _to_pixels(points, matrix):
    points = np.asarray(points, float)
    return points @ matrix[:, :2].T + matrix[:, 2]


def _fill(mask, polygons, matrix):
    shift = 4  # sub-pixel precision of the polygon vertices
    for polygon in polygons:
        pixels = np.round(_to_pixels(polygon, matrix) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [pixels], 255, cv2.LINE_AA, shift)


def _composite(frame, polygons, matrix, colour_of):
    """Blend polygons into ``frame`` inside their bounding region; return the region's hard mask and origin."""
    height, width = frame.shape[:2]
    pixels = _to_pixels(np.concatenate(polygons), matrix)
    left, top = np.maximum(np.floor(pixels.min(axis=0)).astype(int) - 2, 0)
    right, bottom = np.minimum(np.ceil(pixels.max(axis=0)).astype(int) + 2, (width - 1, height - 1))
    if right < left or bottom < top:
        return None, (left, top)
    local = matrix.copy()
    local[:, 2] -= (left, top)
    mask = np.zeros((bottom - top + 1, right - left + 1), np.uint8)
    _fill(mask, polygons, local)
    region = frame[top:bottom + 1, left:right + 1]
    alpha = (mask / np.float32(255))[..., None]
    region *= 1 - alpha
    region += alpha * colour_of(mask >= 128, local)
    return mask >= 128, (left, top)


def draw_hand(frame, shape, matrix, skin, sleeve):
    """Draw one hand onto ``frame`` (float32 BGR) in place; return its box (inclusive pixels) or None."""
    _composite(frame, [shape.sleeve], matrix, lambda inside, local: sleeve)
    scale = np.hypot(matrix[0, 0], matrix[1, 0])

    def shaded_skin(inside, local):
        # Rounded look: darker towards the outline; creases darker still.
        depth = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
        shade = 0.72 + 0.28 * np.clip(depth / max(0.05 * scale, 1.0), 0, 1)
        creases = np.zeros(inside.shape, np.uint8)
        thickness = max(int(round(0.018 * scale)), 1)
        for start, end in shape.creases:
            (x0, y0), (x1, y1) = _to_pixels([start, end], local)
            cv2.line(creases, (int(x0), int(y0)), (int(x1), int(y1)), 255, thickness, cv2.LINE_AA)
        shade *= 1 - 0.35 * (creases / np.float32(255))
        return np.clip(skin * shade[..., None], 0, 255)

    inside, (left, top) = _composite(frame, shape.skin, matrix, shaded_skin)
    if inside is None or not inside.any():
        return None
    ys, xs = np.nonzero(inside)
    return left + int(xs.min()), top + int(ys.min()), left + int(xs.max()), top + int(ys.max())


@dataclass
class Lighting:
    """Per-frame scene light: overall gain, a gradient across the frame and a colour tint."""

    gain: np.ndarray
    gradient: np.ndarray
    direction: np.ndarray
    tint: np.ndarray

    @classmethod
    def plan(cls, rng, frames, fps):
        gain = _smooth_curve(rng, frames, fps, *sorted(rng.uniform(0.6, 1.3, 2)))
        for _ in range(rng.integers(0, 3)):  # a lamp switched on or off
            start = rng.integers(0, frames)
            gain[start:] *= rng.choice([0.75, 1.25])
        return cls(
            gain=np.clip(gain, 0.65, 1.35),
            gradient=_smooth_curve(rng, frames, fps, 0.0, rng.uniform(0.1, 0.5)),
            direction=_smooth_curve(rng, frames, fps, 0, 2 * np.pi, periods=(6.0, 20.0)),
            tint=rng.uniform(0.88, 1.12, 3),
        )

    def apply(self, frame, index):
        height, width = frame.shape[:2]
        ys, xs = np.ogrid[0:height, 0:width]
        direction = self.direction[index]
        ramp = ((xs / width - 0.5) * np.cos(direction) + (ys / height - 0.5) * np.sin(direction)).astype(np.float32)
        frame *= (self.gain[index] * (1 + self.gradient[index] * ramp))[..., None]
        frame *= self.tint


def scene_lengths(rng, frames, fps, shortest_s=2.5, longest_s=4.5):
    """Split a video into scenes (shots) of a few seconds; a short remainder joins the last scene."""
    lengths = []
    while frames - sum(lengths) > 0:
        lengths.append(min(int(rng.uniform(shortest_s, longest_s) * fps), frames - sum(lengths)))
    if len(lengths) > 1 and lengths[-1] < shortest_s * fps * 0.6:
        remainder = lengths.pop()
        lengths[-1] += remainder
    return lengths


def render_scene(rng, *, frames, fps, width, height, poses):
    """Yield (frame as uint8 BGR, [(class, box)]) for one scene: its own place, light, hands and sleeves."""
    margin = 0.25
    skin_tone = np.array(SKIN_TONES_BGR[rng.integers(len(SKIN_TONES_BGR))], float)
    scene = make_background(rng, int(width * (1 + 2 * margin)), int(height * (1 + 2 * margin)), skin_tone)
    pan_x = _smooth_curve(rng, frames, fps, 0, 2 * margin * width, periods=(8.0, 20.0)).astype(int)
    pan_y = _smooth_curve(rng, frames, fps, 0, 2 * margin * height, periods=(8.0, 20.0)).astype(int)
    tracks = plan_hands(rng, frames, fps, width, height, list(poses), skin_tone)
    lighting = Lighting.plan(rng, frames, fps)
    noise_level = rng.uniform(1.5, 5.0)
    blur = rng.uniform(0.3, 0.9)
    for index in range(frames):
        frame = scene[pan_y[index]:pan_y[index] + height, pan_x[index]:pan_x[index] + width].copy()
        in_view = [track for track in tracks if track.visible[index]]
        shapes = [hand_shape(poses[track.labels[index]], track.spread, track.finger_scale) for track in in_view]
        matrices = [_hand_transform(track.centre_x[index], track.centre_y[index], track.scale[index],
                                    track.angle[index], track.mirrored) for track in in_view]
        if len(in_view) == 2:
            _side_by_side(shapes, matrices, gap=0.02 * width)
        objects = []
        for track, shape, matrix in zip(in_view, shapes, matrices):
            box = draw_hand(frame, shape, _keep_in_frame(shape, matrix, width, height), track.skin, track.sleeve)
            if box is not None:
                objects.append((track.labels[index], box))
        lighting.apply(frame, index)
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
        frame += noise_level * rng.standard_normal(frame.shape, dtype=np.float32)
        yield np.clip(frame, 0, 255).astype(np.uint8), objects


def render_video(rng, *, frames, fps, width, height, classes):
    """Yield (frame as uint8 BGR, [(class, box)]) for every frame of one synthetic video of a few scenes,
    so that each video, and so each split of videos, covers many looks."""
    poses = poses_for_classes(classes)
    for length in scene_lengths(rng, frames, fps):
        yield from render_scene(rng, frames=length, fps=fps, width=width, height=height, poses=poses)


def generate_video(video_path, truth_path, *, index, seed, seconds, fps, width, height, classes):
    """Write demo video number ``index`` (mp4) and its ground-truth CSV; return the number of boxes."""
    rng = np.random.default_rng([seed, index])
    frames = max(int(round(seconds * fps)), 1)
    video_path, truth_path = Path(video_path), Path(truth_path)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise InputError(video_path, "OpenCV cannot write an mp4 (mp4v) video here")
    boxes = 0
    with open(truth_path, "w", newline="") as handle:
        truth = csv.writer(handle)
        truth.writerow(TRUTH_COLUMNS)
        for frame_index, (frame, objects) in enumerate(
                render_video(rng, frames=frames, fps=fps, width=width, height=height, classes=classes)):
            writer.write(frame)
            for label, box in objects:
                truth.writerow((frame_index, label, *box))
                boxes += 1
    writer.release()
    log.info("%s: %d frames of %dx%d, %d boxes", video_path, frames, width, height, boxes)
    return boxes


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("demo"), description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    video = commands.add_parser("video", help="generate one demo video and its ground truth")
    video.add_argument("video", help="output .mp4")
    video.add_argument("truth", help="output ground-truth CSV")
    video.add_argument("--index", type=int, required=True, help="number of the video (varies the content)")
    video.add_argument("--seed", type=int, required=True)
    video.add_argument("--seconds", type=float, required=True)
    video.add_argument("--fps", type=int, required=True)
    video.add_argument("--width", type=int, required=True)
    video.add_argument("--height", type=int, required=True)
    video.add_argument("--classes", required=True, help="comma-separated class names")
    args = parser.parse_args(argv)
    generate_video(args.video, args.truth, index=args.index, seed=args.seed, seconds=args.seconds, fps=args.fps,
                   width=args.width, height=args.height, classes=args.classes.split(","))


if __name__ == "__main__":
    run(main)
