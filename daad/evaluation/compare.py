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
each with the CPUs/GPUs it asks for. This process, the driver, loads the test sets, the
DAAD pool and the targets once, shows one bar over runs done, and alone writes
results.json/.md/.png, in (method, test set, seed) order.

Several test sets in one sweep (`test`, `train_normal` and `category` as lists, paired in
order: each test set has its own normal training images, e.g. one MVTec category each):
each test set's folders go under `out/<name>/` (its category, else its folder's name),
results.json holds `tests` (per test set: its rows) and `mean` (per method and seed, the
mean over the test sets, then mean +- std over seeds: the paper's "mean" column, with the
seed spread the `~` marks need), results.md one section per test set after the mean, and
results.png the mean. With one test set every folder, file and printed line is what it
always was.
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

from .data import load_test_set, parse_test_spec, read_rgb
from .methods import NEEDS_DAAD, Method
from .plots import compare_png
from .runs import TABLE_KEYS, RunJob, SweepInputs, PerTestSet, folder_complete, run_one
from .train import EvalConfig
HEADERS = {"pixel_auroc": "AUC", "pixel_ap": "AP", "pro": "PRO", "image_auroc": "img AUC"}


@dataclass
class CompareConfig:
    """`test`, `train_normal`, `category`: one each, or lists paired in order (one category may serve every test set)."""

    train_normal: str | list[str]
    test: str | list[str]
    out: str
    methods: list[str]
    dataset: str | None = None
    exclude: str | None = None
    textures: str | None = None
    category: str | list[str] | None = None
    seeds: int = 1
    seed: int = 0
    per_image: int = 10
    foreground: str = "auto"
    workers: int = 1
    cpus_per_run: float | None = None  # also torch's threads per run (the numbers depend on them); None: torch's default
    eval: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields: size, epochs, batch_size, lr, samples, ...

    def test_sets(self) -> list[tuple[str, str, str | None]]:
        """(test, train_normal, category) per test set; mismatched counts are a DaadError naming them."""
        tests = [self.test] if isinstance(self.test, str) else list(self.test)
        normals = [self.train_normal] if isinstance(self.train_normal, str) else list(self.train_normal)
        cats = [self.category] if self.category is None or isinstance(self.category, str) else list(self.category)
        if not tests:
            raise DaadError("no test set given")
        if len(normals) != len(tests):
            raise DaadError(f"{len(tests)} test sets but {len(normals)} --train-normal folders: give one per test set, in the same order")
        if len(cats) == 1:
            cats = cats * len(tests)
        elif len(cats) != len(tests):
            raise DaadError(f"{len(tests)} test sets but {len(cats)} --category values: give one for all or one per test set, in order")
        return list(zip(tests, normals, cats))


def names_of_test_sets(sets: list[tuple[str, str, str | None]]) -> list[str]:
    """Folder names of several test sets: the category, else the test folder's name; a repeated name gets -2, -3, ..."""
    names: list[str] = []
    for spec, _, category in sets:
        base = category or parse_test_spec(spec)[1].name or "test"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


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
    """What a worker reads: the targets' folders, DRAEM's textures, the DAAD pool's memory-mapped files (the test sets travel loaded)."""
    paths = sorted({Path(t.path).parent for t in targets})
    if config.textures:
        paths.append(Path(config.textures))
    dataset = getattr(pool, "dataset", None)
    return paths + [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]


def sweep_jobs(config: CompareConfig, methods: list[Method]) -> list[RunJob]:
    """Every (method, test set, seed), in the order results are written."""
    seeds = [config.seed + i for i in range(config.seeds)]
    sets = config.test_sets()
    tags: list[str | None] = list(names_of_test_sets(sets)) if len(sets) > 1 else [None]
    return [RunJob(m, spec, s, first=i == 0, index=t, tag=tags[t])
            for m in methods for t, (spec, _, _) in enumerate(sets) for i, s in enumerate(seeds)]


def _row(method: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"method": method, "runs": runs, "best": _aggregate(runs, "best"), "last": _aggregate(runs, "last")}


def _mean_row(method: str, per_test: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Per seed that every test set has: each metric's mean over the test sets; then mean +- std over those seeds."""
    by_seed = [{r["seed"]: r for r in runs} for runs in per_test]
    runs = []
    for seed in sorted(set.intersection(*(set(b) for b in by_seed))):
        run: dict[str, Any] = {"seed": seed}
        for part in ("best", "last"):
            vals = {k: [b[seed][part].get(k) for b in by_seed] for k in TABLE_KEYS}
            run[part] = {k: float(np.mean(v)) for k, v in vals.items() if all(x is not None for x in v)}
        runs.append(run)
    return _row(method, runs)


def compare(config: CompareConfig, methods: list[Method], progress: bool = True,
            echo: Callable[[str], None] = print, engine: Engine | None = None,
            resources: Resources | None = None) -> dict[str, Any]:
    """Run every method x test set x seed as one job each on `engine` (default: one after another here); write results.json, .md, .png in `out`.

    Results are gathered in (method, test set, seed) order whatever order the runs finish
    in; a run that fails is reported as one `Error:` line naming it (and listed under
    `errors` in results.json) and the others go on. `resources`: CPUs/GPUs each run asks
    the engine for (Ray; default 1 CPU).
    """
    from daad.synthesis.cai.output import find_targets

    engine = engine or LocalEngine(1)
    out = Path(config.out).expanduser()
    sets = config.test_sets()
    several = len(sets) > 1
    names = names_of_test_sets(sets)
    base_eval = EvalConfig(synthetic="", test=sets[0][0], out="", train_normal=sets[0][1], category=sets[0][2], **config.eval)
    size = base_eval.size
    start = time.perf_counter()
    nsa = any(m.base.startswith("nsa") for m in methods)
    tests: list[PerTestSet] = []
    for name, (spec, train_normal, category) in zip(names, sets):
        test = load_test_set(spec, size, category)
        echo(f"test set {spec}: {len(test)} images, {test.anomalous} anomalous")
        for s in test.skipped:
            echo(f"bad: {s}")
        tests.append(PerTestSet(out=str(out / name) if several else str(out), test_spec=spec, train_normal=train_normal,
                                category=category, test=test, targets=find_targets(train_normal),
                                normals=_normals(train_normal, size) if nsa else None))
    pool = None
    if any(m.base in NEEDS_DAAD for m in methods):
        if not config.dataset:
            raise DaadError(f"methods {', '.join(m.spec for m in methods if m.base in NEEDS_DAAD)} need --dataset (a published DAAD)")
        from daad.synthesis.cai.patterns import PublishedPool, open_published

        ds, cfg, path = open_published(config.dataset, config.exclude, None, progress=progress)
        pool = PublishedPool(ds, progress=progress)
        echo(f"DAAD {path} [{cfg}]: {len(ds)} anomalies")
    if config.textures is None and any(m.base == "draem" for m in methods):
        raise DaadError("method draem: needs --textures (a folder of texture images, e.g. DTD or a DAAD release's images)")
    engine.check_paths(readable=_input_paths(config, [t for ts in tests for t in ts.targets], pool), writable=[out])
    threads = max(1, int(config.cpus_per_run)) if config.cpus_per_run else None
    inputs = SweepInputs(base_eval=base_eval, tests=tests, per_image=config.per_image, foreground=config.foreground,
                         workers=config.workers, pool=pool, textures=config.textures, threads=threads,
                         progress=progress and isinstance(engine, LocalEngine))
    jobs = sweep_jobs(config, methods)
    seeds = [config.seed + i for i in range(config.seeds)]
    done: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    errors: list[str] = []
    per_test: list[list[dict[str, Any]]] = [[] for _ in sets]
    mean: list[dict[str, Any]] = []
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
                while len(per_test[0]) < len(methods) and all(j in finished for j, job in enumerate(jobs) if job.method == methods[len(per_test[0])]):
                    method = methods[len(per_test[0])]
                    for t, rows in enumerate(per_test):
                        rows.append(_row(method.spec, [done[j] for j, job in enumerate(jobs) if job.method == method and job.index == t and j in done]))
                    if several:
                        mean.append(_mean_row(method.spec, [rows[-1]["runs"] for rows in per_test]))
                        echo(f"mean over {len(sets)} test sets:")
                    echo(table(mean if several else per_test[0], "best"))
            bar.update(1)
    results: dict[str, Any] = {"config": asdict(config), "seeds": seeds}
    if several:
        results["tests"] = [{"name": n, "test": spec, "train_normal": tn, "category": c, "rows": rows}
                            for n, (spec, tn, c), rows in zip(names, sets, per_test)]
        results["mean"] = mean
    else:
        results["rows"] = per_test[0]
    results["seconds"] = round(time.perf_counter() - start, 1)
    if errors:
        results["errors"] = errors
    k = base_eval.last_k
    title = f"{len(sets)} test sets ({', '.join(names)})" if several else config.test
    md = (f"# Pseudo anomalies compared: {title}\n\n"
          f"{len(seeds)} seed(s) {seeds}; {base_eval.epochs} epochs at {size} px; mean ± std over seeds, in %.\n"
          f"Bold: best mean; `~`: below the best by less than the spread (std), not a measured difference.\n\n")
    sections = [("", per_test[0])] if not several else (
        [(f"Mean over the {len(sets)} test sets (per seed the mean over test sets, then mean ± std over seeds)", mean)]
        + [(n if n == spec else f"{n}: {spec}", rows) for n, (spec, _, _), rows in zip(names, sets, per_test)])
    for heading, rows in sections:
        level = "##"
        if heading:
            md += f"## {heading}\n\n"
            level = "###"
        md += (f"{level} Best epoch by {base_eval.select} (the paper's choice; it looks at the test set)\n\n{table(rows, 'best')}\n\n"
               f"{level} Mean of the last {k} epochs\n\n{table(rows, 'last')}\n")
        if several and heading != sections[-1][0]:
            md += "\n"
    if errors:
        md += "\n## Failed runs (not in the tables)\n\n" + "".join(f"- {e}\n" for e in errors)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(md)
    compare_png([{"method": r["method"], **r["best"]} for r in (mean if several else per_test[0])], [k for k in TABLE_KEYS],
                out / "results.png", title=f"best epoch, mean ± std over {len(seeds)} seed(s)"
                + (f", mean over {len(sets)} test sets" if several else ""))
    return results


__all__ = ["CompareConfig", "compare", "folder_complete", "sweep_jobs", "table", "names_of_test_sets"]
