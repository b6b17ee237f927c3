"""A private X display for tests of windows: Xvfb, xdotool and ImageMagick's ``import`` (screenshots),
installed with apt-get when missing, together with the system libraries Qt needs (as the cluster test
installs SLURM); a test skips only where that is impossible."""
import os
import shutil
import subprocess

import cv2

from detflow.lib.labelling.labelimg_adapter import QT_SYSTEM_PACKAGES, missing_qt_library
from helpers.system import apt_install

DESKTOP_TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}


def install_missing():
    """apt-get the display tools (and Qt's libraries) that are missing; the reason to skip, or None."""
    packages = [package for tool, package in DESKTOP_TOOLS.items() if shutil.which(tool) is None]
    if missing_qt_library():
        packages += QT_SYSTEM_PACKAGES
    return apt_install(packages) if packages else None


def start_display():
    """(Xvfb process, its display name such as ":3"); stop it with ``server.terminate()``."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        number = stream.readline().strip()
    assert number.isdigit(), "Xvfb did not report its display"
    return server, f":{number}"


def screenshot(env, path):
    """The whole screen of the display in ``env`` as a PNG at ``path``; the image (BGR)."""
    subprocess.run(["import", "-window", "root", str(path)], env={**os.environ, **env}, check=True, timeout=60)
    return cv2.imread(str(path))
