"""What the SOURCE arguments of a command name: video files, images and streams, found in files,
folders and glob patterns and checked before anything is written.

A SOURCE is a stream URL (rtsp://, rtmp://, http(s)://), a file, a folder (its videos and images,
sorted by name; not its subfolders), or a glob pattern the shell left unexpanded (``'clips/*.mp4'``).
A file counts by its ending: an image (.jpg, .jpeg, .png, .bmp) or a video (the endings given, from
config's videos.extensions). Endings, not content, because FFmpeg opens almost anything: a text file
becomes a video of its text drawn in a terminal font. Each item is then checked as it will be read:
a video by :func:`detflow.lib.data.videos.open_video` (the same words as every stage), an image by
Pillow, a stream by opening it. Bad input is an InputError naming the SOURCE or file and why.
"""
import glob
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from detflow.lib.cli import InputError
from detflow.lib.data.videos import open_stream, open_video, stream_id, video_id

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One thing to read: a ``video`` or ``image`` file, or a ``stream``; ``where`` is its path or URL."""

    kind: str
    where: str

    @property
    def name(self):
        """Its safe name, as video ids are made (:mod:`detflow.lib.data.videos`)."""
        return stream_id(self.where) if self.kind == "stream" else video_id(self.where)


def is_url(text):
    return bool(_URL.match(text))


def find_sources(texts, video_extensions):
    """The Items the SOURCE arguments ``texts`` name, in order, each once; InputError for the first
    that names nothing readable."""
    video_suffixes = tuple(f".{extension.lower()}" for extension in video_extensions)
    items = []
    for text in texts:
        items += [item for item in _expand(text, video_suffixes) if item not in items]
    return items


def _expand(text, video_suffixes):
    if is_url(text):
        return [_stream(text)]
    path = Path(text)
    if path.exists() or path.is_symlink():
        return _from_path(path, video_suffixes)
    if glob.has_magic(text):
        matches = sorted(glob.glob(text))
        if not matches:
            raise InputError(text, "no file or folder matches this pattern")
        return [item for match in matches for item in _from_path(Path(match), video_suffixes)]
    raise InputError(text, "not found (no such file or folder; a stream is an rtsp://, rtmp:// or http(s):// URL)")


def _stream(url):
    scheme = url.split("://", 1)[0].lower()
    if scheme not in STREAM_SCHEMES:
        raise InputError(url, f"{scheme}:// is not a stream this command reads (rtsp://, rtmp://, http(s)://)")
    open_stream(url).release()
    return Item("stream", url)


def _from_path(path, video_suffixes):
    if path.is_dir():
        return _from_folder(path, video_suffixes)
    return [_from_file(path, video_suffixes)]


def _from_folder(folder, video_suffixes):
    endings = video_suffixes + IMAGE_SUFFIXES
    files = [path for path in sorted(folder.iterdir()) if path.suffix.lower() in endings and not path.is_dir()]
    if not files:
        raise InputError(folder, f"no video or image in this folder (looked for {', '.join(endings)})")
    return [_from_file(path, video_suffixes) for path in files]


def _from_file(path, video_suffixes):
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        _check_image(path)
        return Item("image", str(path))
    if suffix in video_suffixes:
        open_video(path).release()
        return Item("video", str(path))
    raise InputError(path, f"not a video or image: its ending is none of {', '.join(video_suffixes + IMAGE_SUFFIXES)} "
                           "(videos.extensions in config.yaml lists the video endings)")


def _check_image(path):
    if not path.exists():
        raise InputError(path, "image file not found (a broken symbolic link?)")
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise InputError(path, f"not an image that can be read ({error})") from None
