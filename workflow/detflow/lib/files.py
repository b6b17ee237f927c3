"""Writing files so that nobody ever reads half of one.

A file is written beside its target as ``<name>.partial`` and then renamed
over it (atomic within one file system): a killed job or a full disk leaves
the old file or none, never a torn one. Where an existing file must never be
replaced (a person's label, an earlier draft), the finished partial file is
linked to its name only while that name is free.
"""
import os
from contextlib import contextmanager
from pathlib import Path


def partial_path(path):
    path = Path(path)
    return path.with_name(path.name + ".partial")


@contextmanager
def replacing(path):
    """Yield the partial path to write; once the block succeeds it replaces ``path``, else it is removed."""
    partial = partial_path(path)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def write_atomically(path, content):
    """Write ``content`` (text or bytes) to ``path`` atomically."""
    with replacing(path) as partial:
        if isinstance(content, bytes):
            partial.write_bytes(content)
        else:
            partial.write_text(content)


@contextmanager
def creating(path):
    """Yield the partial path to write; once the block succeeds it becomes ``path`` unless a file of
    that name exists, which raises FileExistsError and is left as it is."""
    partial = partial_path(path)
    try:
        yield partial
        os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
