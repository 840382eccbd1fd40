"""Helpers shared by the benchmark scripts: run metadata, JSON lines, tables.

Not part of the library: the benchmarks import it as a sibling module
(`python benchmarks/<script>.py` puts `benchmarks/` on `sys.path`).
"""

import datetime
import json
import os
import platform
import resource
import statistics
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "results")


def cpu_model():
    """The CPU's model name (Linux), else `platform.processor()`."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine():
    """Hardware and software a measurement was taken on."""
    import keras

    info = {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "keras": keras.__version__,
    }
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[keras.backend.backend()]
    info[module] = __import__(module).__version__
    return info


def machine_line(info):
    """One markdown line describing `machine()`."""
    versions = ", ".join(
        f"{k} {info[k]}" for k in ("python", "keras", "tensorflow", "jax", "torch") if k in info
    )
    return (
        f"Measured {info['date_utc']} on {info['cpu']} ({info['cpu_count']} logical CPUs, "
        f"1-min load average {info['load_average_1min']} at start), backend "
        f"`{info['backend']}`; {versions}."
    )


def emit(record):
    """Prints one measurement as a JSON line (stdout, flushed)."""
    print(json.dumps(record, default=_json_default), flush=True)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def median(values):
    return statistics.median(values) if values else float("nan")


def mean_std(values):
    """Mean and sample standard deviation (0 for a single value)."""
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def max_rss_mib():
    """Peak resident set size of this process so far (Linux `ru_maxrss` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib():
    """Current resident set size of this process (Linux /proc), else NaN."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def markdown_table(header, rows):
    """A GitHub markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line():
    """The command that produced a result, as typed (relative script path)."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return " ".join([f"KERAS_BACKEND={backend}", "python", script] + sys.argv[1:])


def write_text(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path, REPO_ROOT)}", file=sys.stderr, flush=True)
