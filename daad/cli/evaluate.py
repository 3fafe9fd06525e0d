"""`daad evaluate` and `daad compare`: the paper's evaluation protocol (a thin layer over `daad.evaluation`)."""

from __future__ import annotations

from typing import Any, Callable

import click

METRIC_CHOICES = ("pixel_auroc", "pixel_ap", "pro", "image_auroc")


def _eval_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--test", required=True, help="Test set: NAME:PATH of a dataset (mvtec_ad:~/mvtec/bottle) or a folder with images/ + masks/."),
        click.option("--category", default=None, help="Category, when the dataset root holds several."),
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


@click.command("compare")
@click.option("--train-normal", required=True, type=click.Path(exists=True, file_okay=False), help="Normal training images (the targets of every method).")
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
@_eval_options
def compare_cmd(train_normal: str, methods: str, out_dir: str, dataset: str | None, exclude: str | None, textures: str | None,
                per_image: int, foreground: str, workers: int, seeds: int, seed: int, **kw: Any) -> None:
    """Synthesise with each method, evaluate each with identical settings and seeds, write one table.

    \b
    Writes OUT/<method>/ (anomalib Folder layout, skipped when complete), OUT/eval/<method>@<seed>/,
    OUT/results.json, OUT/results.md (Table 1's shape, best in bold) and OUT/results.png.
    Example:
      daad compare --train-normal bottle/train/good --test mvtec_ad:~/data/mvtec/bottle \\
          --dataset ~/daad-release --exclude mvtec_ad --methods cai-n,cai-m,cutpaste,nsa-n,draem \\
          --textures ~/dtd/images --out compare-bottle
    """
    from daad.core.errors import DaadError
    from daad.evaluation import CompareConfig, compare, split_methods

    try:
        parsed = split_methods(methods)
        config = CompareConfig(train_normal=train_normal, test=kw["test"], out=out_dir, methods=[m.spec for m in parsed],
                               dataset=dataset, exclude=exclude, textures=textures, category=kw["category"], seeds=seeds,
                               seed=seed, per_image=per_image, foreground=foreground, workers=workers, eval=_eval_settings(kw))
        if kw["quiet"]:
            import datasets

            datasets.disable_progress_bars()
        compare(config, parsed, progress=not kw["quiet"], echo=click.echo)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out_dir}/results.json, results.md, results.png")


def register(group: click.Group) -> None:
    group.add_command(evaluate_cmd)
    group.add_command(compare_cmd)
