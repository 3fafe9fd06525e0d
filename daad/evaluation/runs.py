"""One run of a `compare` sweep: synthesise with one method and seed, train and test on one test set.

A run is a job for `Engine.run_jobs` (`daad.engine`): `run_one(inputs, job)` is a
module-level function, `inputs` (what every run shares: the DAAD pool and, per test set,
its loaded images, its targets and NSA's normal images) is sent once per worker (Ray puts it in its
object store once; the local engine passes it by reference), and the job is a few
plain fields. The result is plain data (metrics, folders, the lines to print), so the
driver gathers results whatever node ran them and in whatever order they finish.

Why each run sets torch's thread count: the numbers depend on it. Measured here on the
tiny sweep of the tests (32 px, 2 epochs, deterministic CPU kernels), 2 threads against
1 thread moved CutPaste's pixel AUROC from 54.1 to 57.2 and NSA's PRO from 20.7 to 16.6:
the reduction order of conv backward follows the thread split. A Ray task with 1 CPU runs
1 thread, a local run as many as torch picks for the machine; `cpus_per_run` makes both
the same, so `--engine local` and `--engine ray` give equal metrics on CPU.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from daad.core.errors import DaadError

from .data import ImageSet, load_training_set
from .methods import Method, build
from .train import EvalConfig, evaluate

TABLE_KEYS = ("pixel_auroc", "pixel_ap", "pro", "image_auroc")


@dataclass
class PerTestSet:
    """One test set of a sweep: the loaded test images, its normal training images (the targets), NSA's normals, its folder."""

    out: str  # OUT with one test set, OUT/<name> with several
    test_spec: str
    train_normal: str
    category: str | None
    test: ImageSet
    targets: list[Any]  # synthesis.cai.output.Target
    normals: list[tuple[str, Any]] | None = None


@dataclass
class SweepInputs:
    """What every run of one sweep reads: settings, the DAAD pool, DRAEM's textures, and each test set's inputs."""

    base_eval: EvalConfig
    tests: list[PerTestSet]
    per_image: int
    foreground: str
    workers: int
    pool: Any = None
    textures: str | None = None
    threads: int | None = None  # torch threads per run (None: torch's default where the run is)
    progress: bool = False


@dataclass(frozen=True)
class RunJob:
    """(method, test set, seed): which run, and where its folders are."""

    method: Method
    test: str
    seed: int
    first: bool  # the first seed writes OUT/<method>/, the others OUT/<method>@<seed>/
    index: int = 0  # which of SweepInputs.tests
    tag: str | None = None  # the test set's folder name when a sweep has several (it then names the printed lines too)

    @property
    def name(self) -> str:
        return f"{self.method.spec}, test {self.test}, seed {self.seed}"

    @property
    def label(self) -> str:
        return self.method.spec if self.tag is None else f"{self.method.spec} on {self.tag}"

    @property
    def synth_tag(self) -> str:
        return self.method.folder if self.first else f"{self.method.folder}@{self.seed}"


def folder_complete(folder: Path) -> bool:
    """A synthesis folder is complete when its manifest exists and every file it lists is there."""
    import json

    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        return False
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return bool(rows) and all((folder / r[k]).is_file() for r in rows for k in ("file", "mask", "normal"))


def _seed(seed: int, threads: int | None) -> int:
    """Seed every generator from the run's own seed (a Ray worker process may have run other tasks); returns the threads before."""
    before = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    return before


def _synthesise_and_evaluate(inputs: SweepInputs, job: RunJob, lines: list[str]) -> dict[str, Any]:
    from daad.synthesis.cai.output import run

    ts = inputs.tests[job.index]
    out = Path(ts.out).expanduser()
    size = inputs.base_eval.size
    spec, seed = job.label, job.seed
    synth_dir = out / job.synth_tag
    if folder_complete(synth_dir):
        lines.append(f"{spec} seed {seed}: {synth_dir} is complete, not synthesised again")
    else:
        synth = build(job.method, seed=seed, size=size, per_image=inputs.per_image, pool=inputs.pool,
                      foreground=inputs.foreground, normals=ts.normals, textures=inputs.textures)
        report = run(synth, ts.targets, synth_dir, workers=inputs.workers, progress=inputs.progress)
        lines.append(f"{spec} seed {seed}: " + report.summary().splitlines()[0])
        if report.images == 0:
            raise DaadError("no pseudo anomaly was written")
    cfg = replace(inputs.base_eval, synthetic=str(synth_dir), out=str(out / "eval" / f"{job.method.folder}@{seed}"), seed=seed,
                  test=ts.test_spec, train_normal=ts.train_normal, category=ts.category)
    train = load_training_set(synth_dir, size, cfg.train_normal, cfg.samples, seed)
    res = evaluate(cfg, resume=True, progress=inputs.progress, train=train, test=ts.test)
    lines.append(f"{spec} seed {seed}: " + res.summary().replace("\n", "\n  "))
    return {"seed": seed, "best": {k: res.best.get(k) for k in TABLE_KEYS}, "best_epoch": res.best["epoch"],
            "last": res.last_mean, "synthetic": str(synth_dir), "eval": str(res.out)}


def run_one(inputs: SweepInputs, job: RunJob) -> dict[str, Any]:
    """Run `job`; return {"run": metrics and folders, "lines": [...]} or {"error": one line naming the run, "lines": [...]}.

    A failing run never raises: the sweep's other runs go on, and the driver prints the line.
    """
    lines: list[str] = []
    before = _seed(job.seed, inputs.threads)
    try:
        return {"run": _synthesise_and_evaluate(inputs, job, lines), "lines": lines}
    except DaadError as exc:
        return {"error": f"{job.name}: {exc}", "lines": lines}
    except Exception as exc:  # noqa: BLE001 (one run's failure, e.g. CUDA out of memory, is reported and the sweep goes on)
        return {"error": f"{job.name}: {type(exc).__name__}: {exc}", "lines": lines}
    finally:
        torch.set_num_threads(before)
