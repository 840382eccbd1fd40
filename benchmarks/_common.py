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
# Facts taken once per process (the code's hashes: quality_fashion_mnist.code_state).
PROCESS_STATE = {}
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


def write_whole(path, write):
    """`write(partial)` to a file beside `path` (same extension), then renamed to
    `path`: a parallel process (--shard) never reads half a file."""
    stem, ext = os.path.splitext(path)
    partial = f"{stem}.{os.getpid()}.partial{ext}"
    write(partial)
    os.replace(partial, path)


def write_text(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(partial):
        with open(partial, "w") as f:
            f.write(text)

    write_whole(path, write)
    print(f"wrote {os.path.relpath(path, REPO_ROOT)}", file=sys.stderr, flush=True)


# The evaluation protocol's pure pieces (tests/benchmarks/test_protocol.py) ----------


def stratified_split(labels, fraction, seed):
    """A seeded, class-stratified hold-out split of `range(len(labels))`.

    Returns `(held_out, rest)`: sorted index arrays, disjoint, together all
    indices; `held_out` has `round(fraction * n_c)` (at least 1) indices of
    every class `c` (`kps.evaluation.stratified_subset`).
    """
    import numpy as np

    from keras_pid_ssl.evaluation import stratified_subset

    labels = np.asarray(labels)
    held_out = stratified_subset(labels, fraction, seed)
    rest = np.setdiff1d(np.arange(len(labels)), held_out, assume_unique=True)
    return held_out, rest


def write_idx_gz(path, array):
    """Writes a uint8 array as a gzip-compressed idx file (the MNIST format).

    Reproducible bytes (gzip `mtime=0`), so a folder written twice hashes alike.
    """
    import gzip

    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    tmp = f"{path}.tmp-{os.getpid()}"
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as f,
    ):
        f.write(header + array.tobytes())
    os.replace(tmp, path)


def write_fashion_mnist_folder(folder, train, test):
    """A folder `kps.data.load("fashion_mnist", data_dir=folder)` reads.

    `train` and `test`: `(images, labels)` with uint8 images `(n, h, w, 1)`.
    """
    os.makedirs(folder, exist_ok=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        write_idx_gz(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images[..., 0])
        write_idx_gz(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels)


def sha256_files(paths, root):
    """SHA-256 over the relative paths and bytes of `paths` (sorted)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()


def python_sources(folder):
    """Every `*.py` file under `folder` (recursively)."""
    out = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        out += [os.path.join(directory, f) for f in files if f.endswith(".py")]
    return out


def package_source_hash(package_dir=None):
    """SHA-256 of the content of `keras_pid_ssl/**/*.py` (any byte changes it)."""
    package_dir = package_dir or os.path.join(REPO_ROOT, "keras_pid_ssl")
    return sha256_files(python_sources(package_dir), os.path.dirname(package_dir))


def git_state(root=REPO_ROOT):
    """`{"commit": HEAD or None, "dirty": files of keras_pid_ssl/ changed since HEAD}`."""
    import subprocess

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=True
        ).stdout.rstrip("\n")

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", "keras_pid_ssl").splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    # Porcelain lines are "XY path": two status letters and a space.
    return {"commit": commit, "dirty": [line[3:] for line in dirty if line]}


def cache_key(material):
    """A 16-hex-digit key of a JSON-able dict (keys sorted, so order does not matter)."""
    import hashlib

    text = json.dumps(material, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, c=1.0):
    """Top-1 of logistic regression on standardised features.

    The classifier of `kps.evaluation.linear_eval` (scikit-learn L-BFGS,
    L2 `C=c`), on features already extracted, so one extraction serves every
    label fraction.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_features)
    classifier = LogisticRegression(C=c, max_iter=1000)
    classifier.fit(scaler.transform(train_features), train_labels)
    predicted = classifier.predict(scaler.transform(test_features))
    return float(np.mean(predicted == np.asarray(test_labels)))


def knn_accuracy(train_features, train_labels, test_features, test_labels, k, num_classes):
    """Top-1 of the weighted cosine kNN of `kps.callbacks.KNNMonitor` (T = 0.1)."""
    import numpy as np

    from keras_pid_ssl.callbacks.knn_monitor import weighted_knn_scores

    scores = weighted_knn_scores(train_features, train_labels, test_features, num_classes, k=k)
    return float(np.mean(scores.argmax(axis=1) == np.asarray(test_labels)))


# Two-sided 97.5% quantiles of Student's t for df = 1..30, then 40, 60, 120, inf
# (used when SciPy is missing; a df between table rows takes the lower row's,
# larger, quantile: the interval errs wide).
T_TABLE_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980, float("inf"): 1.960,
}  # fmt: skip


def t_quantile_975(df, use_scipy=True):
    """The 0.975 quantile of Student's t with `df` degrees of freedom (>= 1)."""
    if df < 1:
        raise ValueError(f"`df` must be at least 1 (two or more seeds). Received: df={df}")
    if use_scipy:
        try:
            from scipy import stats
        except ImportError:
            pass
        else:
            return float(stats.t.ppf(0.975, df))
    return T_TABLE_975[max(row for row in T_TABLE_975 if row <= df)]


def paired_difference(a, b, use_scipy=True):
    """Mean of `a - b` (paired by position, e.g. per seed) and its 95% t-interval.

    Returns a dict: `n`, `diffs`, `mean`, `std` (sample), `low`, `high`
    (`mean -/+ t_{0.975, n-1} std / sqrt(n)`; NaN for fewer than two pairs).
    """
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    if n == 0:
        raise ValueError("`a` and `b` are empty: a paired difference needs at least one pair.")
    mean = statistics.fmean(diffs)
    if n < 2:
        return {"n": n, "diffs": diffs, "mean": mean, "std": float("nan"),
                "low": float("nan"), "high": float("nan")}  # fmt: skip
    std = statistics.stdev(diffs)
    half = t_quantile_975(n - 1, use_scipy) * std / n**0.5
    return {"n": n, "diffs": diffs, "mean": mean, "std": std, "low": mean - half,
            "high": mean + half}  # fmt: skip


def loss_attribute_callback(values):
    """A callback setting attributes of `model.ssl_loss` before training starts.

    The benchmark's way to set a loss coefficient `kps.training.pretrain` has
    no argument for (Barlow Twins' `lambda_offdiag`, VICReg's
    `invariance_weight`): the losses read them when the train step is traced
    (or, eagerly, every step), after `on_train_begin`. An unknown attribute is
    an error, so a renamed coefficient cannot be skipped silently.
    """
    import keras

    class SetLossAttributes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            loss = self.model.ssl_loss
            for name, value in values.items():
                if not hasattr(loss, name):
                    raise ValueError(
                        f"{type(loss).__name__} has no attribute {name!r} to set to {value!r}; "
                        "check the benchmark's lever names against the loss's arguments."
                    )
                setattr(loss, name, float(value))

    return SetLossAttributes()
