"""Label Studio's boxes back in image pixels, and our detections as Label Studio can hold them: what the
ML backend's tests compare with detflow.lib.metrics.detection_match (dicts of ``class``, ``score`` and
``box``, 0-based pixels)."""
import json
import urllib.error
import urllib.request

# The tests' servers run on this machine: never through a proxy, whatever http_proxy says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def in_pixels(prediction):
    """The boxes of a Label Studio prediction (``rectanglelabels`` in percent of the image) in pixels."""
    boxes = []
    for item in prediction["result"]:
        value, width, height = item["value"], item["original_width"], item["original_height"]
        x1, y1 = value["x"] * width / 100, value["y"] * height / 100
        boxes.append({"class": value["rectanglelabels"][0], "score": item["score"],
                      "box": [x1, y1, x1 + value["width"] * width / 100, y1 + value["height"] * height / 100]})
    return boxes


def inside(detections, width, height):
    """Detections (dicts, or Detection objects) as a Label Studio box holds them: clipped to the image,
    and left out when nothing of them is inside it."""
    kept = []
    for item in detections:
        name, score, box = ((item["class"], item["score"], item["box"]) if isinstance(item, dict)
                            else (item.name, item.score, item.box))
        x1, x2 = (min(max(value, 0.0), width) for value in (box[0], box[2]))
        y1, y2 = (min(max(value, 0.0), height) for value in (box[1], box[3]))
        if x2 > x1 and y2 > y1:
            kept.append({"class": name, "score": score, "box": [x1, y1, x2, y2]})
    return kept


def http(url, body=None, method=None, raw=None):
    """(status, JSON answer) of a request to a server on this machine; ``raw``: bytes sent as they are."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("GET" if data is None else "POST"),
                                     headers={"Content-Type": "application/json"})
    try:
        with OPENER.open(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
