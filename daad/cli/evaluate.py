"""`daad evaluate` and `daad compare`: the paper's evaluation protocol (a thin layer over `daad.evaluation`)."""

from __future__ import annotations

from typing import Any, Callable

import click

from daad.cli.engine_options import engine_options, make_engine

METRIC_CHOICES = ("pixel_auroc", "pixel_ap", "pro", "image_auroc")


def _eval_options(f: Callable[..., Any], several: bool = False) -> Callable[..., Any]:
    test_help = "Test set: NAME:PATH of a dataset (mvtec_ad:~/mvtec/bottle) or a folder with images/ + masks/."
    category_help = "Category, when the dataset root holds several."
    if several:
        test_help += " Repeat for several test sets in one sweep: the Nth --test pairs with the Nth --train-normal."
        category_help += " Once for every test set, or once per --test, paired in order."
    options = [
        click.option("--test", required=True, multiple=several, help=test_help),
        click.option("--category", default=None, multiple=several, help=category_help),
        click.option("--size", default=256, show_default=True, type=click.IntRange(min=32), help="Images resized to SIZE x SIZE (a multiple of 32)."),
        click.option("--epochs", default=200, show_default=True, type=click.IntRange(min=1)),
        click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=2)),
        click.option("--lr", default=1e-4, show_default=True, type=float, help="Adam learning rate."),
        click.option("--samples", default=1000, show_default=True, type=click.IntRange(min=1), help="Pseudo anomalies used for training (the paper: 1000)."),
        click.option("--width", default=64, show_default=True, type=click.IntRange(min=2), help="UNet base width (DRAEM: 64)."),
        click.option("--depth", default=5, show_default=True, type=click.IntRange(1, 7), help="UNet pooling steps (DRAEM: 5)."),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda (fp16 mixed precision), cuda:N or auto."),
        click.option("--select", default="pixel_ap", show_default=True, type=click.Choice(METRIC_CHOICES), help="Metric that picks the best epoch."),
        click.option("--last-k", default=5, show_default=True, type=click.IntRange(min=1), help="Also report the mean of the last K epochs."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _eval_settings(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: kw[k] for k in ("size", "epochs", "batch_size", "lr", "samples", "width", "depth", "device", "select", "last_k")}


@click.command("evaluate")
@click.option("--synthetic", required=True, type=click.Path(exists=True, file_okay=False), help="Pseudo anomalies in the anomalib Folder layout (abnormal/, mask/, normal/).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder: results.json, curve.png, predictions.png, checkpoint.pt.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the checkpoint in OUT (same settings; --epochs may grow).")
@click.option("--train-normal", default=None, type=click.Path(exists=True, file_okay=False), help="Normal training images (default: the folder's normal/).")
@_eval_options
def evaluate_cmd(synthetic: str, out_dir: str, seed: int, resume: bool, train_normal: str | None, **kw: Any) -> None:
    """Train the protocol's UNet on normal images + pseudo anomalies; measure it on a real test set every epoch.

    \b
    Examples:
      daad evaluate --synthetic cai-bottle --train-normal bottle/train/good --test mvtec_ad:~/data/mvtec/bottle --out eval/cai-n
      daad evaluate --synthetic cai-capsule --test mvtec_ad:~/data/mvtec --category capsule --size 128 --epochs 20 --out eval/capsule
    """
    from daad.core.errors import DaadError
    from daad.evaluation import EvalConfig, evaluate

    config = EvalConfig(synthetic=synthetic, test=kw["test"], out=out_dir, train_normal=train_normal,
                        category=kw["category"], seed=seed, **_eval_settings(kw))
    try:
        result = evaluate(config, resume=resume, progress=not kw["quiet"])
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


def _several_test_sets(f: Callable[..., Any]) -> Callable[..., Any]:
    return _eval_options(f, several=True)


@click.command("compare")
@click.option("--train-normal", required=True, multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Normal training images (the targets of every method); once per --test, paired in order.")
@click.option("--methods", required=True, help="Comma-separated: cai-n, cai-m, cai-paper-n, cai-paper-m, cutpaste, cutpaste-scar, nsa-n, nsa-m, draem; CAI ablations cai-n:no-pe, :no-stm, :no-ils, :split=2,2,6, :mask=paper.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder: one synthesis folder per method, eval/, results.json/.md/.png.")
@click.option("--dataset", default=None, help="Published DAAD for the CAI methods (a `daad publish` folder or a Hub repo id).")
@click.option("--exclude", default=None, help="Evaluation dataset to keep out of DAAD (config exclude_<name>).")
@click.option("--textures", default=None, type=click.Path(exists=True, file_okay=False), help="DRAEM's texture images (DTD, or any image folder).")
@click.option("--per-image", default=10, show_default=True, type=click.IntRange(min=1), help="Pseudo anomalies per normal image (the paper: 10).")
@click.option("--foreground", default="auto", show_default=True, type=click.Choice(("auto", "rembg", "otsu", "full")), help="CAI's foreground m(I).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Synthesis processes.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1), help="Repeat each method with N seeds (synthesis and training).")
@click.option("--seed", default=0, show_default=True, type=int, help="First seed.")
@engine_options
@click.option("--cpus-per-run", default=None, type=click.FloatRange(min=1), help="CPUs each run asks Ray for (default 1), and torch's threads per run on either engine (default: torch's choice here); the numbers depend on the threads, so keep it when comparing engines.")
@click.option("--gpus-per-run", default=0.0, show_default=True, type=click.FloatRange(min=0), help="With --engine ray: GPUs each run asks for (Ray sets CUDA_VISIBLE_DEVICES; pair with --device cuda).")
@_several_test_sets
def compare_cmd(train_normal: tuple[str, ...], methods: str, out_dir: str, dataset: str | None, exclude: str | None, textures: str | None,
                per_image: int, foreground: str, workers: int, seeds: int, seed: int, engine_name: str, ray_address: str | None,
                cpus_per_run: float | None, gpus_per_run: float, **kw: Any) -> None:
    """Synthesise with each method, evaluate each with identical settings and seeds, write one table.

    \b
    Writes OUT/<method>/ (anomalib Folder layout, skipped when complete), OUT/eval/<method>@<seed>/,
    OUT/results.json, OUT/results.md (Table 1's shape, best in bold) and OUT/results.png.
    Each (method, test set, seed) is one run: one after another here, or one Ray task each
    with --engine ray (OUT, the inputs and the DAAD on paths every node sees).
    Several test sets (--test and --train-normal repeated, paired in order): each one's
    folders go under OUT/<category or test folder name>/; results.md has the mean over the
    test sets and one section per test set; results.png shows the mean.
    Examples:
      daad compare --train-normal bottle/train/good --test mvtec_ad:~/data/mvtec/bottle \\
          --dataset ~/daad-release --exclude mvtec_ad --methods cai-n,cai-m,cutpaste,nsa-n,draem \\
          --textures ~/dtd/images --out compare-bottle
      daad compare ... --methods cai-n,cutpaste,draem --seeds 5 --engine ray --gpus-per-run 1 --device cuda --out /shared/cmp
      daad compare --test mvtec_ad:~/data/mvtec --category bottle --train-normal bottle/train/good \\
          --test mvtec_ad:~/data/mvtec --category capsule --train-normal capsule/train/good --methods cutpaste,nsa-n --out cmp
    """
    from daad.core.errors import DaadError
    from daad.engine import Resources
    from daad.evaluation import CompareConfig, compare, split_methods

    if gpus_per_run and engine_name != "ray":
        raise click.BadParameter("only with --engine ray (a local run uses the GPUs --device names)", param_hint="--gpus-per-run")
    engine = make_engine(engine_name, None, ray_address, gpus_per_worker=gpus_per_run, cpus_per_worker=cpus_per_run or 1)
    try:
        parsed = split_methods(methods)
        tests, categories = kw["test"], kw["category"]
        one = len(tests) == 1 and len(train_normal) == 1 and len(categories) <= 1  # one test set: the config (results.json) as always
        config = CompareConfig(train_normal=train_normal[0] if one else list(train_normal), test=tests[0] if one else list(tests),
                               out=out_dir, methods=[m.spec for m in parsed], dataset=dataset, exclude=exclude, textures=textures,
                               category=(categories[0] if categories else None) if one or len(categories) <= 1 else list(categories),
                               seeds=seeds,
                               seed=seed, per_image=per_image, foreground=foreground, workers=workers, cpus_per_run=cpus_per_run,
                               eval=_eval_settings(kw))
        config.test_sets()  # mismatched counts: one Error line before anything is loaded
        if engine_name != "local":
            click.echo(f"engine: {engine.describe()}, {cpus_per_run or 1:g} CPU and {gpus_per_run:g} GPU per run")
        results = compare(config, parsed, progress=not kw["quiet"], echo=click.echo, engine=engine,
                          resources=Resources(cpus=cpus_per_run or 1, gpus=gpus_per_run))
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.close()
    click.echo(f"wrote {out_dir}/results.json, results.md, results.png")
    failed = results.get("errors", [])
    if failed:
        rows = results["rows"] if "rows" in results else [r for t in results["tests"] for r in t["rows"]]
        total = sum(len(r["runs"]) for r in rows) + len(failed)
        raise click.ClickException(f"{len(failed)} of {total} runs failed (each named above); the tables hold the others")


def register(group: click.Group) -> None:
    group.add_command(evaluate_cmd)
    group.add_command(compare_cmd)
