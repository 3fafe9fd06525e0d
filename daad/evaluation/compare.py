"""`compare`: every method synthesised and evaluated with identical settings and seeds, one table.

For each method and seed s (base seed + 0..N-1): synthesise into `out/<method>/` (seed
index 0) or `out/<method>@<s>/` into the same anomalib Folder layout `daad synthesize`
writes (skipped when its manifest and every file it lists are already there), then
`evaluate` into `out/eval/<method>@<s>/` (resumed when a checkpoint is there). Results
are mean +- std over the seeds of the best epoch (the paper's choice) and of the mean of
the last epochs. A method whose mean is below the column's best by less than the larger
of the two standard deviations is marked `~` ("within the spread": the data do not say it
is worse).

Where runs happen: each (method, test set, seed) is one job (`runs.run_one`) for the
engine's `run_jobs` (`daad.engine`): the local engine runs them one after another in this
process (what compare always did, same numbers), Ray runs them as tasks across a cluster,
each with the CPUs/GPUs it asks for. This process, the driver, loads the test set, the
DAAD pool and the targets once, shows one bar over runs done, and alone writes
results.json/.md/.png, in (method, test set, seed) order.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from daad.core.atomic import atomic_path
from daad.core.errors import DaadError
from daad.engine import Engine, LocalEngine, Resources

from .data import load_test_set, read_rgb
from .methods import NEEDS_DAAD, Method
from .plots import compare_png
from .runs import TABLE_KEYS, RunJob, SweepInputs, folder_complete, run_one
from .train import EvalConfig
HEADERS = {"pixel_auroc": "AUC", "pixel_ap": "AP", "pro": "PRO", "image_auroc": "img AUC"}


@dataclass
class CompareConfig:
    train_normal: str
    test: str
    out: str
    methods: list[str]
    dataset: str | None = None
    exclude: str | None = None
    textures: str | None = None
    category: str | None = None
    seeds: int = 1
    seed: int = 0
    per_image: int = 10
    foreground: str = "auto"
    workers: int = 1
    cpus_per_run: float | None = None  # also torch's threads per run (the numbers depend on them); None: torch's default
    eval: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields: size, epochs, batch_size, lr, samples, ...


def _cell(mean: float | None, std: float, bold: bool, close: bool) -> str:
    if mean is None or np.isnan(mean):
        return "-"
    text = f"{100 * mean:.1f} ± {100 * std:.1f}"
    return f"**{text}**" if bold else (f"{text} ~" if close else text)


def table(rows: list[dict[str, Any]], which: str) -> str:
    """A markdown table (methods x metrics) of `which` ("best" or "last"), best mean in bold, `~` within the spread."""
    keys = [k for k in TABLE_KEYS if any(r[which]["mean"].get(k) is not None for r in rows)]
    lines = ["| method | " + " | ".join(HEADERS[k] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    tops = {}
    for k in keys:
        vals = [(r[which]["mean"].get(k), r[which]["std"].get(k, 0.0)) for r in rows if r[which]["mean"].get(k) is not None]
        tops[k] = max(vals, key=lambda v: v[0]) if vals else (None, 0.0)
    for r in rows:
        cells = []
        for k in keys:
            m, s = r[which]["mean"].get(k), r[which]["std"].get(k, 0.0)
            top_m, top_s = tops[k]
            bold = m is not None and m == top_m
            close = m is not None and top_m is not None and (top_m - m) < max(s, top_s)
            cells.append(_cell(m, s, bold, close))
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _aggregate(runs: list[dict[str, Any]], part: str) -> dict[str, dict[str, float]]:
    mean, std = {}, {}
    for k in TABLE_KEYS:
        vals = [r[part][k] for r in runs if r[part].get(k) is not None]
        if vals:
            mean[k], std[k] = float(np.mean(vals)), float(np.std(vals))
    return {"mean": mean, "std": std}


def _normals(folder: str, size: int) -> list[tuple[str, Any]]:
    from daad.synthesis.cai.output import find_targets

    return [(t.key, read_rgb(t.path, size)) for t in find_targets(folder)]


def _input_paths(config: CompareConfig, targets: list[Any], pool: Any) -> list[Path]:
    """What a worker reads: the targets' folders, DRAEM's textures, the DAAD pool's memory-mapped files (the test set travels loaded)."""
    paths = sorted({Path(t.path).parent for t in targets})
    if config.textures:
        paths.append(Path(config.textures))
    dataset = getattr(pool, "dataset", None)
    return paths + [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]


def sweep_jobs(config: CompareConfig, methods: list[Method]) -> list[RunJob]:
    """Every (method, test set, seed), in the order results are written."""
    seeds = [config.seed + i for i in range(config.seeds)]
    return [RunJob(m, config.test, s, first=i == 0) for m in methods for i, s in enumerate(seeds)]


def compare(config: CompareConfig, methods: list[Method], progress: bool = True,
            echo: Callable[[str], None] = print, engine: Engine | None = None,
            resources: Resources | None = None) -> dict[str, Any]:
    """Run every method x seed as one job each on `engine` (default: one after another here); write results.json, .md, .png in `out`.

    Results are gathered in (method, test set, seed) order whatever order the runs finish
    in; a run that fails is reported as one `Error:` line naming it (and listed under
    `errors` in results.json) and the others go on. `resources`: CPUs/GPUs each run asks
    the engine for (Ray; default 1 CPU).
    """
    from daad.synthesis.cai.output import find_targets

    engine = engine or LocalEngine(1)
    out = Path(config.out).expanduser()
    base_eval = EvalConfig(synthetic="", test=config.test, out="", train_normal=config.train_normal,
                           category=config.category, **config.eval)
    size = base_eval.size
    start = time.perf_counter()
    test = load_test_set(config.test, size, config.category)
    echo(f"test set {config.test}: {len(test)} images, {test.anomalous} anomalous")
    for s in test.skipped:
        echo(f"bad: {s}")
    targets = find_targets(config.train_normal)
    pool = None
    if any(m.base in NEEDS_DAAD for m in methods):
        if not config.dataset:
            raise DaadError(f"methods {', '.join(m.spec for m in methods if m.base in NEEDS_DAAD)} need --dataset (a published DAAD)")
        from daad.synthesis.cai.patterns import PublishedPool, load_published

        ds, cfg, path = load_published(config.dataset, config.exclude, None)
        pool = PublishedPool(ds, progress=progress)
        echo(f"DAAD {path} [{cfg}]: {len(ds)} anomalies")
    if config.textures is None and any(m.base == "draem" for m in methods):
        raise DaadError("method draem: needs --textures (a folder of texture images, e.g. DTD or a DAAD release's images)")
    normals = _normals(config.train_normal, size) if any(m.base.startswith("nsa") for m in methods) else None
    engine.check_paths(readable=_input_paths(config, targets, pool), writable=[out])
    threads = max(1, int(config.cpus_per_run)) if config.cpus_per_run else None
    inputs = SweepInputs(out=str(out), base_eval=base_eval, targets=targets, test=test, per_image=config.per_image,
                         foreground=config.foreground, workers=config.workers, pool=pool, normals=normals,
                         textures=config.textures, threads=threads, progress=progress and isinstance(engine, LocalEngine))
    jobs = sweep_jobs(config, methods)
    seeds = [config.seed + i for i in range(config.seeds)]
    done: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), desc="runs", unit="run", disable=not progress) as bar:
        for i, result in engine.run_jobs(partial(run_one, inputs), jobs, resources or Resources()):
            finished.add(i)
            if "run" in result:
                done[i] = result["run"]
            with tqdm.external_write_mode():
                for line in result["lines"]:
                    echo(line)
                if "error" in result:
                    errors.append(result["error"])
                    echo(f"Error: {result['error']}")
                # the table so far, each time the next method in order has all its runs (locally: after each method)
                while len(rows) < len(methods) and all(j in finished for j, job in enumerate(jobs) if job.method == methods[len(rows)]):
                    method = methods[len(rows)]
                    runs = [done[j] for j, job in enumerate(jobs) if job.method == method and j in done]
                    rows.append({"method": method.spec, "runs": runs, "best": _aggregate(runs, "best"), "last": _aggregate(runs, "last")})
                    echo(table(rows, "best"))
            bar.update(1)
    results: dict[str, Any] = {"config": asdict(config), "seeds": seeds, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    if errors:
        results["errors"] = errors
    k = base_eval.last_k
    md = (f"# Pseudo anomalies compared: {config.test}\n\n"
          f"{len(seeds)} seed(s) {seeds}; {base_eval.epochs} epochs at {size} px; mean ± std over seeds, in %.\n"
          f"Bold: best mean; `~`: below the best by less than the spread (std), not a measured difference.\n\n"
          f"## Best epoch by {base_eval.select} (the paper's choice; it looks at the test set)\n\n{table(rows, 'best')}\n\n"
          f"## Mean of the last {k} epochs\n\n{table(rows, 'last')}\n")
    if errors:
        md += "\n## Failed runs (not in the tables)\n\n" + "".join(f"- {e}\n" for e in errors)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(md)
    compare_png([{"method": r["method"], **r["best"]} for r in rows], [k for k in TABLE_KEYS], out / "results.png",
                title=f"best epoch, mean ± std over {len(seeds)} seed(s)")
    return results


__all__ = ["CompareConfig", "compare", "folder_complete", "sweep_jobs", "table"]
