"""Runs the programs in tests/distribute/programs in fresh processes.

Device set-up (logical CPU devices, XLA host device counts, collective ops,
TF_CONFIG) is process-wide and cannot be undone, so every multi-device check
runs in its own interpreter.
"""

import json
import os
import socket
import subprocess
import sys

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


def program_env(backend, **extra):
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        PYTHONHASHSEED="0",
    )
    if backend == "jax":
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
        ).strip()
        env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def failure_message(name, returncode, output):
    return f"{name} exited with {returncode}; last output:\n{output[-4000:]}"


def run_program(name, out_path, args=(), env=None, timeout=300):
    """Runs `programs/<name>` with `out_path` and `args`; returns its JSON."""
    completed = subprocess.run(
        [sys.executable, os.path.join(PROGRAMS, name), str(out_path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(failure_message(name, completed.returncode, completed.stdout))
    with open(out_path) as f:
        return json.load(f)


def free_loopback_ports(count):
    """`count` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_cluster(name, out_paths, args_per_process, envs, timeout=300):
    """Runs one process of `programs/<name>` per entry, all at once.

    Returns the JSON each process wrote to its `out_paths` entry.
    """
    processes = [
        subprocess.Popen(
            [sys.executable, os.path.join(PROGRAMS, name), str(out), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for out, args, env in zip(out_paths, args_per_process, envs)
    ]
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    for index, (p, output) in enumerate(zip(processes, outputs)):
        if p.returncode != 0:
            raise AssertionError(failure_message(f"{name} process {index}", p.returncode, output))
    reports = []
    for out in out_paths:
        with open(out) as f:
            reports.append(json.load(f))
    return reports
