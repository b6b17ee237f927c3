"""labelImg 1.8.6 (its last release) on Python 3.10 and later, adapted at run time.

labelImg passes Python floats to Qt methods that take integers: the painter
while a box is being drawn (``canvas.py``: ``drawLine``, ``drawRect``), the
label text (``shape.py``: ``drawText``), the zoom box on Ctrl+wheel
(``set_zoom``: ``QSpinBox.setValue``) and the scroll bars on the wheel
(``scroll_request``, ``zoom_request``: ``QScrollBar.setValue``). Python 3.10
stopped converting floats to integers implicitly, so PyQt5 raises TypeError
there, and PyQt5 aborts the process (SIGABRT) on an exception it cannot hand
back, losing unsaved work. :func:`adapt` makes exactly those Qt methods accept
floats again, truncating them as Python 3.9 did, so labelImg draws and scrolls
as it always has. The installed package is never edited.

:func:`keep_running_on_errors` is the safety net for anything else: an
exception in an event handler is logged with its traceback instead of
aborting the window.
"""
import ctypes
import functools
import logging
import sys
import traceback
from pathlib import Path

log = logging.getLogger(__name__)

# (module, class, method): the Qt calls labelImg 1.8.6 makes with floats.
FLOAT_CALLS = (
    ("QtGui", "QPainter", "drawLine"),
    ("QtGui", "QPainter", "drawRect"),
    ("QtGui", "QPainter", "drawText"),
    ("QtWidgets", "QAbstractSlider", "setValue"),
    ("QtWidgets", "QSpinBox", "setValue"),
)
ERROR_PREFIX = "labelImg raised an error (the window stays open; save your work):"
# Debian/Ubuntu packages of the system libraries Qt's X11 plugin loads (the first three are often missing).
QT_SYSTEM_PACKAGES = ("libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinerama0", "libxcb-image0", "libxcb-randr0",
                      "libxcb-render-util0", "libxcb-shape0", "libxcb-xfixes0", "libxcb-xkb1", "libxkbcommon-x11-0",
                      "libfontconfig1", "libdbus-1-3", "libgl1")


def _truncating(method):
    """``method`` with every float argument truncated to an integer, as Python 3.9 did for Qt's int parameters."""

    @functools.wraps(method)
    def call(self, *args):
        return method(self, *(int(value) if isinstance(value, float) else value for value in args))

    call.accepts_floats = True
    return call


def adapt():
    """Make the Qt methods of :data:`FLOAT_CALLS` accept floats (idempotent)."""
    from PyQt5 import QtGui, QtWidgets

    modules = {"QtGui": QtGui, "QtWidgets": QtWidgets}
    for module, class_name, method_name in FLOAT_CALLS:
        cls = getattr(modules[module], class_name)
        method = getattr(cls, method_name)
        if not getattr(method, "accepts_floats", False):
            setattr(cls, method_name, _truncating(method))


def keep_running_on_errors():
    """Log an exception raised inside Qt's event loop instead of letting PyQt5 abort the process."""

    def report(kind, value, trace):
        print(ERROR_PREFIX, "".join(traceback.format_exception(kind, value, trace)), file=sys.stderr, flush=True)

    sys.excepthook = report


def missing_qt_library():
    """The system library Qt's X11 plugin cannot load (e.g. ``libxcb-icccm.so.4: cannot open ...``), or None."""
    from PyQt5.QtCore import QLibraryInfo

    plugin = Path(QLibraryInfo.location(QLibraryInfo.PluginsPath)) / "platforms" / "libqxcb.so"
    if not plugin.exists():  # not Linux, or a Qt without the X11 plugin
        return None
    try:
        ctypes.CDLL(plugin)
    except OSError as error:
        return str(error)
    return None
