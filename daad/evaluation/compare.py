"""`compare`: every method synthesised and evaluated with identical settings and seeds, one table.

For each method and seed s (base seed + 0..N-1): synthesise into `out/<method>/` (seed
index 0) or `out/<method>@<s>/` into the same anomalib Folder layout `daad synthesize`
writes (skipped when its manifest and every file it lists are already there), then
`evaluate` into `out/eval/<method>@<s>/` (resumed when a checkpoint is there). Results
are mean +- std over the seeds of the best epoch (the paper's choice) and of the mean of
the last epochs. A method whose mean is below the column's best by less than the larger
of the two standard deviations is marked `~` ("within the spread": the data do not say it
is worse).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from daad.core.atomic import atomic_path
from daad.core.errors import DaadError

from .data import load_test_set, load_training_set, read_rgb
from .methods import NEEDS_DAAD, Method, build
from .plots import compare_png
from .train import EvalConfig, evaluate

TABLE_KEYS = ("pixel_auroc", "pixel_ap", "pro", "image_auroc")
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
    eval: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields: size, epochs, batch_size, lr, samples, ...


def folder_complete(folder: Path) -> bool:
    """A synthesis folder is complete when its manifest exists and every file it lists is there."""
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        return False
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return bool(rows) and all((folder / r[k]).is_file() for r in rows for k in ("file", "mask", "normal"))


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


def compare(config: CompareConfig, methods: list[Method], progress: bool = True,
            echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every method x seed; write results.json, results.md, results.png in `out`; return the results."""
    from daad.synthesis.cai.output import find_targets, run

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
    normals = _normals(config.train_normal, size) if any(m.base.startswith("nsa") for m in methods) else None
    rows: list[dict[str, Any]] = []
    seeds = [config.seed + i for i in range(config.seeds)]
    for method in methods:
        runs = []
        for i, seed in enumerate(seeds):
            tag = method.folder if i == 0 else f"{method.folder}@{seed}"
            synth_dir = out / tag
            if folder_complete(synth_dir):
                echo(f"{method.spec} seed {seed}: {synth_dir} is complete, not synthesised again")
            else:
                synth = build(method, seed=seed, size=size, per_image=config.per_image, pool=pool,
                              foreground=config.foreground, normals=normals, textures=config.textures)
                report = run(synth, targets, synth_dir, workers=config.workers, progress=progress)
                echo(f"{method.spec} seed {seed}: " + report.summary().splitlines()[0])
                if report.images == 0:
                    raise DaadError(f"{method.spec}: no pseudo anomaly was written")
            cfg = replace(base_eval, synthetic=str(synth_dir), out=str(out / "eval" / f"{method.folder}@{seed}"), seed=seed)
            train = load_training_set(synth_dir, size, config.train_normal, cfg.samples, seed)
            res = evaluate(cfg, resume=True, progress=progress, train=train, test=test)
            echo(f"{method.spec} seed {seed}: " + res.summary().replace("\n", "\n  "))
            runs.append({"seed": seed, "best": {k: res.best.get(k) for k in TABLE_KEYS}, "best_epoch": res.best["epoch"],
                         "last": res.last_mean, "synthetic": str(synth_dir), "eval": str(res.out)})
        rows.append({"method": method.spec, "runs": runs, "best": _aggregate(runs, "best"), "last": _aggregate(runs, "last")})
        echo(table(rows, "best"))
    results = {"config": asdict(config), "seeds": seeds, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    k = base_eval.last_k
    md = (f"# Pseudo anomalies compared: {config.test}\n\n"
          f"{len(seeds)} seed(s) {seeds}; {base_eval.epochs} epochs at {size} px; mean ± std over seeds, in %.\n"
          f"Bold: best mean; `~`: below the best by less than the spread (std), not a measured difference.\n\n"
          f"## Best epoch by {base_eval.select} (the paper's choice; it looks at the test set)\n\n{table(rows, 'best')}\n\n"
          f"## Mean of the last {k} epochs\n\n{table(rows, 'last')}\n")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(md)
    compare_png([{"method": r["method"], **r["best"]} for r in rows], [k for k in TABLE_KEYS], out / "results.png",
                title=f"best epoch, mean ± std over {len(seeds)} seed(s)")
    return results


__all__ = ["CompareConfig", "compare", "folder_complete", "table"]
