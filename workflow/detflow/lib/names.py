"""Names that become file names and Snakemake wildcard values: video ids, training variants.

One place computes the byte budget of a name: a file name may have 255 bytes,
and the longest ending any stage adds to a video id is a frame's file written
atomically (``<id>_<index>.jpeg.partial``, frame indices of up to 9 digits) or
a video's gesture events (``<id>.events.json.partial``). A name longer than
MAX_NAME_BYTES is cut and ends in ``_`` and a hash of the whole name.
"""
import hashlib
import re

NAME_MAX_BYTES = 255  # a file name on ext4, XFS, APFS, NTFS (as UTF-8 bytes or UTF-16 units, fewer here)
# Every ending a stage adds to a video id, written atomically (detflow.lib.files adds ".partial").
ENDINGS = ("_123456789.jpeg", "_123456789.xml", ".events.json", ".events.csv", ".json", ".csv", ".mp4", ".log",
           ".tsv")
PARTIAL = ".partial"
LONGEST_ENDING_BYTES = max(len(ending.encode()) for ending in ENDINGS) + len(PARTIAL)
MAX_NAME_BYTES = NAME_MAX_BYTES - LONGEST_ENDING_BYTES
HASH_CHARS = 10
# Snakemake refuses a wildcard value ending in a piece repeated this many times (it takes it for an
# infinite recursion: snakemake.io.PeriodicityDetector, 20 to 100 repeats).
_PERIODIC = re.compile(r"(.+?)\1{19,99}$")


def fitted(name, kept_ending=""):
    """``name`` itself when the part before ``kept_ending`` (with which it must end) fits in MAX_NAME_BYTES;
    else that part cut so that the whole ends in a hash of it and ``kept_ending`` within MAX_NAME_BYTES."""
    base = name[:len(name) - len(kept_ending)] if kept_ending else name
    if len(base.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:HASH_CHARS]
    room = MAX_NAME_BYTES - HASH_CHARS - 1 - len(kept_ending.encode())
    cut = base.encode()[:room].decode(errors="ignore").rstrip("_")
    return f"{cut}_{digest}{kept_ending}"


def periodic_ending(name):
    """(piece, repeats) where ``name`` ends in a piece repeated as often as Snakemake refuses in a
    wildcard value, else None."""
    if len(name) < 20:
        return None
    match = _PERIODIC.search(name)
    return (match.group(1), len(match.group()) // len(match.group(1))) if match else None


def periodic_problem(name):
    """What is wrong with a wildcard value Snakemake would refuse, in words; None for a good one."""
    periodic = periodic_ending(name)
    if periodic is None:
        return None
    return (f"ends in '{periodic[0]}' repeated {periodic[1]} times, which Snakemake refuses in file names (it "
            "takes them for an endless recursion)")
