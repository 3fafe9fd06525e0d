"""`daad cdm train|generate`: CAI-guided diffusion (paper Sec. 3.3). torch and diffusers load only inside the commands."""

from __future__ import annotations

import click

from daad.cli.params import UserPath
from daad.cli.engine_options import engine_options, make_engine
from daad.core import taxonomy
from daad.core.errors import DaadError


def _classes(value: str | None) -> list[str] | None:
    if not value:
        return None
    try:
        classes = [taxonomy.check_class(c) for c in value.split(",") if c.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if taxonomy.UNASSIGNED in classes:
        raise click.BadParameter(f"{taxonomy.UNASSIGNED!r} is not an anomaly class that can be learned")
    return classes


@click.group()
def cdm() -> None:
    """CAI-guided diffusion: learn anomaly classes from CAI output, generate new anomalies.

    \b
    Needs the cdm extra (pip install 'daad[cdm]') and a Stable-Diffusion-style model folder.
    Nothing is downloaded: --pretrained is a local folder or a hub id already in the HF cache.
    """


@cdm.command("train")
@click.option("--pretrained", required=True, help="Stable-Diffusion-style model: folder with tokenizer/ text_encoder/ vae/ unet/ scheduler/, or a cached hub id.")
@click.option("--data", required=True, type=UserPath(exists=True, file_okay=False), help="A `daad synthesize` output folder (abnormal/, mask/, manifest.jsonl).")
@click.option("--out", required=True, type=UserPath(file_okay=False), help="Folder for the trained CDM (embeddings, config, checkpoints).")
@click.option("--classes", default=None, help="Comma-separated classes to learn (default: every class in the data).")
@click.option("--steps", default=3000, show_default=True, help="Optimisation steps in total (with --resume: up to this many).")
@click.option("--batch-size", default=1, show_default=True)
@click.option("--lr", default=5e-3, show_default=True, help="AdamW learning rate of the token embeddings.")
@click.option("--resolution", default=512, show_default=True, help="Training images are resized to this square size (512 for SD 1.x).")
@click.option("--checkpoint-every", default=500, show_default=True, help="Write embeddings and a resumable checkpoint every K steps.")
@click.option("--spatial-tokens", default=0, show_default=True, help="Extra tokens computed from the mask by a spatial encoder (Eq. 5's E_s); 0 = off.")
@click.option("--prompt", default="a photo of {token}", show_default=True, help="Prompt template; {token} becomes the class token.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp16", "fp32"]), default="auto", show_default=True, help="auto: fp16 on GPU, fp32 on CPU.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its newest checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(pretrained, data, out, classes, steps, batch_size, lr, resolution, checkpoint_every, spatial_tokens, prompt, seed, device, precision, resume, quiet) -> None:
    """Learn one token per anomaly class from CAI output; the base model stays frozen.

    \b
    The loss is the paper's Eq. 5: || mask * (eps - eps_theta(z_t, t, e)) ||^2 on the latents.
    \b
    Examples:
      daad cdm train --pretrained ~/models/sd-v1-5 --data cai-out/ --classes crack,scratch --steps 3000 --out cdm/
      daad cdm train --pretrained ~/models/sd-v1-5 --data cai-out/ --steps 6000 --out cdm/ --resume
    The learned tokens are diffusers textual-inversion files: cdm/embeddings/<class>.safetensors.
    """
    from daad.synthesis.cdm.train import TrainConfig, train

    if "{token}" not in prompt:
        raise click.BadParameter("the prompt template must contain {token}", param_hint="--prompt")
    cfg = TrainConfig(
        pretrained=pretrained, data=data, out=out, classes=_classes(classes), steps=steps, batch_size=batch_size,
        lr=lr, resolution=resolution, checkpoint_every=checkpoint_every, spatial_tokens=spatial_tokens,
        prompt=prompt, seed=seed, device=device, precision=precision,
    )
    try:
        result = train(cfg, resume=resume, progress=not quiet)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


@cdm.command("generate")
@click.option("--cdm", "cdm_dir", required=True, type=UserPath(exists=True, file_okay=False), help="A folder written by `daad cdm train`.")
@click.option("--targets", required=True, type=UserPath(exists=True), help="A normal image or a folder of them (searched recursively).")
@click.option("--class", "anomaly_class", required=True, type=click.Choice(taxonomy.CLASSES), help="Which learned class to generate.")
@click.option("--out", required=True, type=UserPath(file_okay=False), help="Output folder: abnormal/, mask/, manifest.jsonl (as `daad synthesize`).")
@click.option("--per-image", default=10, show_default=True, help="Anomalies generated per normal image.")
@click.option("--masks", default=None, type=UserPath(exists=True, file_okay=False), help="Folder with one <target name>.png mask per target (a/x.png -> a_x.png); default: draw from the CAI masks the CDM was trained on.")
@click.option("--steps", default=50, show_default=True, help="DDIM denoising steps.")
@click.option("--guidance", default=7.5, show_default=True, help="Classifier-free guidance scale.")
@click.option("--strength", default=1.0, show_default=True, help="How much noise to start from inside the mask (0-1].")
@click.option("--seed", default=0, show_default=True)
@click.option("--pretrained", default=None, help="Base model location if it moved since training (same model).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp16", "fp32"]), default="auto", show_default=True)
@engine_options
@click.option("--gpus-per-worker", default=0.0, show_default=True, type=click.FloatRange(min=0), help="With --engine ray: GPUs per worker (1: one worker per GPU, each loads the pipeline once); 0: CPU workers.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Workers (local: processes, default 1; Ray: default as many as the cluster has room for).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate_cmd(cdm_dir, targets, anomaly_class, out, per_image, masks, steps, guidance, strength, seed, pretrained, device, precision,
                 engine_name, ray_address, gpus_per_worker, workers, quiet) -> None:
    """Generate anomalies of one class inside masks of normal images (blended latent diffusion).

    \b
    Pixels outside the written mask are exactly the normal image's.
    Examples:
      daad cdm generate --cdm cdm/ --targets mvtec/bottle/train/good --class crack --per-image 10 --out gen/
      daad cdm generate --cdm cdm/ --targets normal/ --masks my-masks/ --class scratch --per-image 2 --out gen/
      daad cdm generate --cdm /shared/cdm --targets /shared/normal --class crack --out /shared/gen --engine ray --gpus-per-worker 1
    """
    from daad.synthesis.cdm.generate import CDM, CDMSpec, generate_folder

    engine = make_engine(engine_name, workers, ray_address, gpus_per_worker=gpus_per_worker)
    spec = CDMSpec(str(cdm_dir), pretrained=pretrained, device=device, precision=precision)
    try:
        # One process here: load once, now. Elsewhere each worker loads it once itself.
        model = CDM.load(cdm_dir, pretrained=pretrained, device=device, precision=precision) if engine.workers <= 1 and engine_name == "local" else spec
        report = generate_folder(model, targets, anomaly_class, out, per_image=per_image, masks=masks, seed=seed,
                                 steps=steps, guidance=guidance, strength=strength, progress=not quiet, engine=engine)
    except DaadError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.close()
    click.echo(report.summary())


def register(group: click.Group) -> None:
    group.add_command(cdm)
