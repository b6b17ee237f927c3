"""System packages the tests install with apt-get, as root, where a program is missing."""
import os
import shutil
import subprocess

# Wait for another apt or dpkg process (an unattended upgrade, a parallel test) instead of failing at once.
APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-o", "Acquire::Retries=3"]


def apt_install(packages):
    """Install Debian ``packages``: None when done, else the reason they cannot be (for a test to skip with)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"needs {', '.join(packages)} (installing them needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*APT_GET, "install", "-y", "-q", "--no-install-recommends", *packages]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:  # stale package lists: update them once, then try again
        subprocess.run([*APT_GET, "update", "-q"], capture_output=True, text=True, env=env, timeout=900)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        return f"apt-get could not install {', '.join(packages)}: {done.stderr.strip()[-300:]}"
    return None
