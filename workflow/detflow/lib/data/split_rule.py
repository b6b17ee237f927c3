"""Which split a group of images (a video, or one image) belongs to: a pure function
of the group's name and the seed, the same on every machine and in every process
(SHA-256 of ``"<seed>:<group>"``, never Python's salted ``hash()``). The splits
stage assigns the dataset with it, and the workflow uses it to know which
videos training reads before any job runs. Why this rule: see detflow.splits.
"""
import hashlib

SPLITS = ("train", "val", "test")


def unit_hash(seed, group):
    """A number in [0, 1) fixed by the seed and the group's name, the same on every machine."""
    digest = hashlib.sha256(f"{seed}:{group}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(group, seed, fractions):
    """The split ("train", "val" or "test") of one group."""
    u = unit_hash(seed, group)
    if u < fractions["train"]:
        return "train"
    if u < fractions["train"] + fractions["val"]:
        return "val"
    return "test"
