"""What the benchmarks say about the machine they ran on."""
from pathlib import Path


def cpu_model():
    """The processor's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"
