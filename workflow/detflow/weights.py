"""Weights stage: the ImageNet weights of a backbone, downloaded once into the
project (``resources/weights/``) where the internet is, so that training never
downloads (compute nodes of many clusters have no internet).

The file, its address and its checksum are the ones keras-retinanet's backbone
would fetch itself (asked through :mod:`detflow.lib.model.retinanet`); ``--base-url``
takes the same file name from a mirror instead. The download is written beside
its target and renamed into place only once its size (the server's
Content-Length), checksum (where keras-retinanet knows one) and HDF5 signature
are right: a broken or refused download leaves nothing behind. Network errors
and server errors are retried with growing waits; when every attempt fails,
one line says which URL to download by hand and where to put the file.
"""
import argparse
import hashlib
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import h5py

from detflow.lib.cli import InputError, parse_optional, run
from detflow.lib.files import replacing
from detflow.lib.model import retinanet

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60  # per read: a stalled connection counts as a failed attempt


def weights_source(backbone, base_url=None):
    """(URL, checksum or None) of ``backbone``'s ImageNet weights: keras-retinanet's, or the same file at a mirror."""
    try:
        file_name, url, checksum = retinanet.imagenet_weights_source(backbone)
    except (ValueError, NotImplementedError, ImportError, AttributeError) as error:
        # AttributeError: keras-retinanet's vgg asks tf_keras for a constant it no longer has.
        raise InputError("config: train.backbone",
                         f"keras-retinanet cannot name ImageNet weights for {backbone!r} here "
                         f"({type(error).__name__}: {error}); use none or a weights file")
    if base_url:
        url = f"{base_url.rstrip('/')}/{file_name}"
    return url, checksum


def file_digest(path, checksum):
    """The digest of ``path`` in the algorithm of ``checksum``, as Keras's get_file chooses it by length."""
    digest = hashlib.sha256() if len(checksum) == 64 else hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_once(url, partial):
    """Write ``url`` to ``partial``; OSError (URLError, HTTPError, a short read) when the transfer fails."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(partial, "wb") as file:
        expected = response.headers.get("Content-Length")
        for chunk in iter(lambda: response.read(CHUNK), b""):
            file.write(chunk)
        written = file.tell()
    if expected is not None and written != int(expected):
        raise OSError(f"the transfer ended after {written} of {expected} bytes")
    if written == 0:
        raise OSError("the server sent an empty file")


def check_file(partial, url, checksum):
    """Refuse a download whose checksum differs, or which is not an HDF5 (.h5) file."""
    if checksum:
        actual = file_digest(partial, checksum)
        if actual != checksum.lower():
            raise InputError(url, f"checksum {actual} differs from the expected {checksum}: refused, "
                                  "nothing written (a corrupt download or a wrong mirror)")
    if not h5py.is_hdf5(partial):
        raise InputError(url, "is not an HDF5 (.h5) weights file: refused, nothing written")


def fetch(url, out, checksum, attempts, first_wait_s=2.0):
    """Download ``url`` to ``out`` (atomically), checked; retry network and server errors, waiting
    ``first_wait_s`` then twice as long each time. InputError after the last attempt."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            with replacing(out) as partial:
                download_once(url, partial)
                check_file(partial, url, checksum)
            log.info("downloaded %s to %s (%.1f MB)", url, out, out.stat().st_size / 2**20)
            return out
        except OSError as error:
            # A missing file (4xx) will not appear by trying again.
            final = attempt == attempts or (isinstance(error, urllib.error.HTTPError) and error.code < 500)
            if final:
                raise InputError(out, f"could not download {url} ({error}); with no network here, download "
                                      f"that URL by hand where there is one and save it as {out}") from None
            wait = first_wait_s * 2 ** (attempt - 1)
            log.warning("attempt %d of %d to download %s failed (%s); again in %.0f s",
                        attempt, attempts, url, error, wait)
            time.sleep(wait)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backbone", help="a keras-retinanet backbone, e.g. resnet50 or mobilenet224_1.0")
    parser.add_argument("out", help="the weights file to write (.h5)")
    parser.add_argument("--base-url", type=parse_optional(str), required=True,
                        help="a mirror holding the file under keras-retinanet's name (none: its own address)")
    parser.add_argument("--attempts", type=int, required=True, help="download attempts before giving up")
    parser.add_argument("--checksum", default=None,
                        help="expected md5 or sha256 of the file (default: keras-retinanet's, where it has one)")
    args = parser.parse_args(argv)
    url, checksum = weights_source(args.backbone, args.base_url)
    fetch(url, args.out, args.checksum or checksum, args.attempts)


if __name__ == "__main__":
    run(main)
