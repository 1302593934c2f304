"""Footprint cases: peak memory of a training run, ``import`` time, installed size.

Each is measured in fresh subprocesses so that one library's allocations and
imports never count against the other:

* peak memory: a child imports one library, builds the network, runs a few
  training steps on a random batch and reports its resident-set high-water
  mark: VmHWM from /proc/self/status on Linux (``resource`` ru_maxrss
  elsewhere; on Linux ru_maxrss survives fork+exec and would report the
  parent's peak): the whole process, interpreter and imported libraries
  included, as a user sees it.
  The high-water mark right after the imports is kept in the JSON (``detail``)
  to separate the libraries' own weight from the training's. The PyTorch child
  builds its twin from a plain description (twins.py loaded by path), so it
  never imports cnnrs; the cnnrs child never imports torch.
* import time: ``python -c "import X"`` timed inside the child with
  perf_counter around the import, cnnrs and torch alternately, one warm-up
  each (disk cache), median of the rest.
* installed size: the files a distribution installed (its RECORD), alone and
  with its installed run-time dependencies. An editable install has no file
  list, so its package directory is measured instead (what a wheel would hold).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from .timing import SUBJECT, CaseResult, Measurement

_TWINS = Path(__file__).with_name("twins.py")

_PEAK_RSS = """
def peak_rss_kib():
    # VmHWM: the high-water mark of this process's own address space. ru_maxrss is not
    # used on Linux: it keeps the parent's high-water mark across fork+exec.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_CNNRS_CHILD = (
    _PEAK_RSS
    + """
import json, sys
import cnnrs
from cnnrs.bench.cases_networks import NETWORKS, cnnrs_training_step, random_batch
after_import = peak_rss_kib()
args = json.loads(sys.argv[1])
cnnrs.set_num_threads(args["threads"])
network = NETWORKS[args["network"]]
model = network.build_cnnrs()
model.train()
x, y = random_batch(network, args["batch"])
step = cnnrs_training_step(model, x, y)
for _ in range(args["steps"]):
    step()
peak = peak_rss_kib()
print(json.dumps({"peak_kib": peak, "after_import_kib": after_import}))
"""
)

_TORCH_CHILD = (
    _PEAK_RSS
    + """
import json, runpy, sys
import torch
after_import = peak_rss_kib()
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
twins = runpy.run_path(args["twins"])
model = twins["torch_from_description"](args["description"])
model.train()
torch.manual_seed(0)
x = torch.randn(args["batch"], *args["input_shape"])
y = torch.randint(0, args["num_classes"], (args["batch"],))
step = twins["torch_training_step"](model, x, y, 0.01, 0.9)
for _ in range(args["steps"]):
    step()
peak = peak_rss_kib()
print(json.dumps({"peak_kib": peak, "after_import_kib": after_import}))
"""
)


def _run_child(code: str, args: dict, timeout: float) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"child exited {completed.returncode}: {tail[0]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def peak_memory(
    network_name: str, batch: int, steps: int, threads: int, timeout: float = 300.0
) -> CaseResult:
    """Peak RSS (MiB) of ``steps`` training steps of one network, cnnrs vs PyTorch, fresh processes."""
    from .cases_networks import NETWORKS
    from .twins import describe

    network = NETWORKS[network_name]
    name = f"peak RSS {network_name} train b{batch} x{steps}"
    args = {"network": network_name, "batch": batch, "steps": steps, "threads": threads}
    measurements = []
    for library in (SUBJECT, "torch"):
        m = Measurement(library)
        try:
            if library == SUBJECT:
                out = _run_child(_CNNRS_CHILD, args, timeout)
            elif not _torch_installed():
                m.missing = "torch is not installed"
                measurements.append(m)
                continue
            else:
                description = describe(network.build_cnnrs())
                torch_args = {
                    **args,
                    "twins": str(_TWINS),
                    "description": description,
                    "input_shape": list(network.input_shape),
                    "num_classes": network.num_classes,
                }
                out = _run_child(_TORCH_CHILD, torch_args, timeout)
            m.value = out["peak_kib"] / 1024
            m.samples = [out["peak_kib"] / 1024, out["after_import_kib"] / 1024]
        except Exception as exc:
            m.error = f"{type(exc).__name__}: {exc}"[:200]
        measurements.append(m)
    note = "VmHWM of a fresh process; JSON samples = [peak, after imports] MiB"
    return CaseResult(name, "footprint", "MiB", False, measurements, note=note)


_IMPORT_CHILD = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_time(runs: int = 5, timeout: float = 120.0) -> CaseResult:
    """Median wall time of ``import cnnrs`` and ``import torch`` in fresh interpreters, alternated."""
    modules = [SUBJECT, "torch"]
    samples: dict[str, list[float]] = {m: [] for m in modules}
    errors: dict[str, str] = {}
    missing = {} if _torch_installed() else {"torch": "torch is not installed"}
    for repetition in range(runs + 1):  # the first round warms the disk cache and is dropped
        for module in modules:
            if module in missing or module in errors:
                continue
            completed = subprocess.run(
                [sys.executable, "-c", _IMPORT_CHILD.format(module=module)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if completed.returncode != 0:
                errors[module] = (completed.stderr.strip().splitlines() or ["failed"])[-1][:200]
            elif repetition > 0:
                samples[module].append(float(completed.stdout.strip().splitlines()[-1]) * 1000)
    measurements = []
    for module in modules:
        m = Measurement(module, missing=missing.get(module), error=errors.get(module))
        if samples[module] and not m.error:
            m.samples = samples[module]
            m.value = statistics.median(samples[module])
        measurements.append(m)
    return CaseResult(f"import time (median of {runs})", "footprint", "ms", False, measurements)


def _distribution_files_bytes(name: str) -> tuple[int, str]:
    """Bytes of the files a distribution installed, and how they were found."""
    import importlib.metadata as metadata

    dist = metadata.distribution(name)
    files = [f for f in (dist.files or []) if not str(f).endswith(".pth")]
    total = 0
    found_package_files = False
    for f in files:
        path = Path(dist.locate_file(f))
        if path.is_file():
            total += path.stat().st_size
            if not str(f).startswith(("..", f"{name}-")):
                found_package_files = True
    if found_package_files:
        return total, "RECORD"
    # editable install: the RECORD lists a .pth only; measure the package directory itself
    module = __import__(name)
    package_dir = Path(module.__file__).parent
    total += sum(
        p.stat().st_size for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    return total, f"package directory {package_dir} (editable install)"


def _runtime_dependencies(name: str) -> list[str]:
    """Installed distributions ``name`` needs at run time (its requirements, recursively, no extras)."""
    import importlib.metadata as metadata

    try:
        from packaging.requirements import Requirement
    except ImportError:  # without packaging, markers cannot be evaluated: count the distribution alone
        return []
    seen: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop()
        try:
            requires = metadata.distribution(current).requires or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            dep = requirement.name.lower().replace("_", "-")
            if dep not in seen and dep != name:
                seen.append(dep)
                pending.append(dep)
    return seen


def installed_size() -> list[CaseResult]:
    """Installed MiB of cnnrs and torch: the package alone, and with its installed run-time dependencies."""
    import importlib.metadata as metadata

    alone: list[Measurement] = []
    with_deps: list[Measurement] = []
    notes = []
    for name in (SUBJECT, "torch"):
        try:
            own, how = _distribution_files_bytes(name)
        except metadata.PackageNotFoundError:
            alone.append(Measurement(name, missing=f"{name} is not installed"))
            with_deps.append(Measurement(name, missing=f"{name} is not installed"))
            continue
        alone.append(Measurement(name, value=own / 2**20))
        total, absent = own, []
        for dep in _runtime_dependencies(name):
            try:
                total += _distribution_files_bytes(dep)[0]
            except Exception:
                absent.append(dep)
        with_deps.append(Measurement(name, value=total / 2**20))
        notes.append(
            f"{name}: {how}" + (f"; dependencies not installed: {', '.join(absent)}" if absent else "")
        )
    return [
        CaseResult("installed size", "footprint", "MiB", False, alone, note="; ".join(notes)),
        CaseResult("installed size + run-time deps", "footprint", "MiB", False, with_deps),
    ]
