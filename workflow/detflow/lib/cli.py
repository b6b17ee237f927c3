"""What every stage's command line shares: logging, the error convention and
option parsing.

Bad input raises :class:`InputError`; :func:`run` turns it into one line on
stderr naming the file and the reason, and exit status 1, never a traceback.
"""
import argparse
import logging
import sys


class InputError(Exception):
    """Bad input from the user: a file (or config key) and what is wrong with it."""

    def __init__(self, where, reason):
        self.where = str(where)
        self.reason = reason
        super().__init__(f"{self.where}: {reason}")


def parse_bool(text):
    """argparse type for explicit booleans (rules pass ``--flag true``)."""
    value = str(text).strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_optional(kind):
    """argparse type that reads ``none``/``null`` as None and anything else as ``kind``."""

    def parse(text):
        if str(text).strip().lower() in ("none", "null", ""):
            return None
        return kind(text)

    parse.__name__ = f"optional {kind.__name__}"
    return parse


def run(main, argv=None):
    """Run a stage's ``main(argv)`` with logging set up and InputError reported cleanly."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        main(argv)
    except InputError as error:
        logging.getLogger("detflow").error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
