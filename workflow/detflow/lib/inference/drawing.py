"""Drawing detections on images: a box in its class's colour (keras-retinanet's
palette) with "class score" on a filled label, and a frame's index and time or another status line."""
import cv2
from keras_retinanet.utils.colors import label_color

FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_QUALITY = 92


def _text_colour(colour):
    """Black or white, whichever reads better on ``colour`` (BGR)."""
    blue, green, red = colour
    return (0, 0, 0) if 0.114 * blue + 0.587 * green + 0.299 * red > 140 else (255, 255, 255)


def _label(image, text, origin, colour, scale, thickness):
    """``text`` on a filled box of ``colour`` whose top left is near ``origin``, kept inside the image."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(1, round(2 * scale))
    box_width, box_height = width + 2 * pad, height + baseline + 2 * pad
    left = int(min(max(origin[0], 0), max(image.shape[1] - box_width, 0)))
    top = int(min(max(origin[1], 0), max(image.shape[0] - box_height, 0)))
    cv2.rectangle(image, (left, top), (left + box_width, top + box_height), colour, -1)
    cv2.putText(image, text, (left + pad, top + pad + height), FONT, scale, _text_colour(colour), thickness, cv2.LINE_AA)


def draw_detections(image, detections):
    """Draw each detection on ``image`` (BGR, in place): a box in its class's colour and a caption
    "class score" above it (inside the box where there is no room above); the best is drawn last."""
    height, width = image.shape[:2]
    side = min(height, width)
    thickness = max(1, round(side / 240))
    scale, text_thickness = max(0.4, side / 700), max(1, round(side / 500))
    for detection in sorted(detections, key=lambda item: item.score):
        colour = tuple(int(value) for value in label_color(detection.label))
        x1, y1, x2, y2 = (int(round(value)) for value in detection.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        caption = f"{detection.name} {detection.score:.2f}"
        (_, text_height), baseline = cv2.getTextSize(caption, FONT, scale, text_thickness)
        caption_height = text_height + baseline + 2 * max(1, round(2 * scale))
        top = y1 - caption_height if y1 - caption_height >= 0 else y1 + thickness
        _label(image, caption, (x1 - thickness // 2, top), colour, scale, text_thickness)
    return image


def draw_status(image, text):
    """``text`` on a dark label in the top left corner."""
    side = min(image.shape[:2])
    _label(image, text, (0, 0), (32, 32, 32), max(0.35, side / 1100), max(1, round(side / 600)))


def draw_frame_label(image, frame_index, timestamp):
    """The frame index and time in the top left corner, to find a frame in the CSV."""
    draw_status(image, f"frame {frame_index}  {timestamp:.2f} s")


def write_jpeg(path, image):
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"{path}: the annotated image could not be written")
