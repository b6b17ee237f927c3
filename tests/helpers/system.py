"""System packages the tests install with apt-get, as root, where a program is missing; and what a
server process listens on."""
import os
import shutil
import subprocess
from pathlib import Path

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


def listening(pid):
    """host:port of every TCP socket that process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                address, port = fields[1].split(":")
                if table == "tcp":
                    host = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
                else:
                    host = "ipv6:" + address
                found.add(f"{host}:{int(port, 16)}")
    return found
