"""Training CDM (paper Sec. 3.3, Eq. 5): textual inversion on CAI's pseudo anomalies with a mask-weighted loss.

    e*, E_s* = argmin E_{z ~ E_a(I_sa), y_loc, eps, t} || y_loc * (eps - eps_theta(z_t, t, e)) ||^2

z is the VAE latent of a CAI image, y_loc its anomaly mask downsampled to latent size,
e the prompt embedding containing the class token (and the spatial encoder's tokens),
and the base model (VAE, UNet, text encoder) stays frozen.

Choices (the paper defers details to its supplement):
- y_loc is the mask max-pooled to latent size: a latent cell counts when any of its
  pixels is anomalous, so a one-pixel scratch still gets weight (area pooling would
  give it 1/64 of a cell at Stable Diffusion's factor 8).
- The squared norm is averaged over the masked latent elements, so the step size does
  not depend on how large the anomalies are; it is Eq. 5 up to a per-batch constant.
- With a v-prediction model (SD 2.x at 768 px) the target is the velocity instead of
  eps; the weighting by y_loc is the same.
- One random generator drives batch choice, VAE sampling, noise and timesteps, and
  its state is in every checkpoint, so `--resume` continues the very same run: N steps
  in one go and N/2 + resume + N/2 give identical embeddings (on the same device).
- The text encoder runs in fp32 even when the UNet and VAE are fp16 on GPU: gradients
  reach the learned vectors through it, and it is small. A gradient scaler guards the
  fp16 UNet's backward pass against underflow.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from daad.core.errors import DaadError
from daad.core.images import load_image, load_mask
from daad.synthesis.cdm import cdm_folder
from daad.synthesis.cdm.cai_folder import Sample, find_samples, load_pair
from daad.synthesis.cdm.model import Components, check_pretrained, load_components, pick_device, pick_dtype
from daad.synthesis.cdm.textual_inversion import LearnedTokens, class_token
from daad.core.taxonomy import CLASSES

DEFAULT_PROMPT = "a photo of {token}"


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in cdm.json so a run can be inspected and resumed."""

    pretrained: str
    data: str
    out: str
    classes: list[str] | None = None
    steps: int = 3000
    batch_size: int = 1
    lr: float = 5e-3
    resolution: int = 512
    checkpoint_every: int = 500
    spatial_tokens: int = 0
    prompt: str = DEFAULT_PROMPT
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"


@dataclass
class TrainResult:
    out: Path
    steps: int
    samples: dict[str, int]
    losses: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    embeddings: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.samples.items())
        tail = self.losses[-min(len(self.losses), 50):]
        head = self.losses[:min(len(self.losses), 50)]
        loss = f"masked loss {np.mean(head):.4f} (first {len(head)}) -> {np.mean(tail):.4f} (last {len(tail)}); " if self.losses else ""
        lines = [f"trained {self.steps} steps on {sum(self.samples.values())} CAI images ({counts}) in {self.seconds:.1f} s; {loss}wrote {self.out}"]
        lines += [f"  {c}: {p}" for c, p in self.embeddings.items()]
        lines += [f"skipped {s}" for s in self.skipped]
        return "\n".join(lines)


def latent_mask(mask: torch.Tensor, latent_hw: Sequence[int]) -> torch.Tensor:
    """y_loc: the pixel mask (B,1,H,W) max-pooled to the latent grid (B,1,h,w)."""
    return F.adaptive_max_pool2d(mask.float(), tuple(latent_hw))


def masked_loss(pred: torch.Tensor, target: torch.Tensor, y_loc: torch.Tensor) -> torch.Tensor:
    """Eq. 5: || y_loc * (target - pred) ||^2, averaged over the masked latent elements."""
    weight = y_loc.expand_as(pred).float()
    err = (weight * (target.float() - pred.float())) ** 2
    return err.sum() / weight.sum().clamp_min(1.0)


def denoising_loss(
    comps: Components,
    learned: LearnedTokens,
    pixels: torch.Tensor,
    masks: torch.Tensor,
    prompts: Sequence[str],
    generator: torch.Generator,
    timesteps: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one batch (pixels (B,3,H,W) in [-1,1], masks (B,1,H,W) in {0,1}).

    `timesteps` and `noise` may be given to evaluate a fixed batch (tests, validation);
    otherwise they are drawn from `generator`.
    """
    from diffusers.utils.torch_utils import randn_tensor

    device, dtype = comps.device, comps.dtype
    with torch.no_grad():
        dist = comps.vae.encode(pixels.to(device, dtype)).latent_dist
        latents = dist.sample(generator=generator) * comps.scaling_factor
    if noise is None:
        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    if timesteps is None:
        timesteps = torch.randint(0, comps.scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
    timesteps = timesteps.to(device)
    noise = noise.to(device, latents.dtype)
    noisy = comps.scheduler.add_noise(latents, noise, timesteps)
    masks = masks.to(device)
    hidden = learned.encode(comps.tokenizer, comps.text_encoder, prompts, masks=masks)
    pred = comps.unet(noisy, timesteps, hidden.to(dtype)).sample
    target = comps.scheduler.get_velocity(latents, noise, timesteps) if comps.prediction_type == "v_prediction" else noise
    return masked_loss(pred, target, latent_mask(masks, latents.shape[-2:]))


def build_learned(comps: Components, classes: Sequence[str], spatial_tokens: int, seed: int = 0) -> LearnedTokens:
    """Fresh learned tokens for `classes`, initialised from the class names, attached to the text encoder.

    The spatial encoder's random initialisation comes from `seed` (not torch's global
    generator), so a run is reproducible from its config alone.
    """
    dim = comps.text_encoder.get_input_embeddings().weight.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        learned = LearnedTokens(classes, dim, spatial_tokens)
    learned.init_from_words(comps.tokenizer, comps.text_encoder, classes)
    learned.to(comps.device)
    learned.attach(comps.tokenizer, comps.text_encoder)
    return learned


def _class_order(samples: list[Sample], requested: Sequence[str] | None) -> list[str]:
    present = {s.anomaly_class for s in samples}
    if requested:
        missing = [c for c in requested if c not in present]
        if missing:
            raise DaadError(f"no usable CAI images of class {', '.join(missing)} in the training data")
    return [c for c in CLASSES if c in present]


def _where(pretrained: str) -> str:
    """A local model folder as an absolute path (generation may run from another directory); a hub id as is."""
    path = Path(pretrained).expanduser()
    return str(path.resolve()) if path.exists() else pretrained


def _training_block(cfg: TrainConfig, classes: list[str], comps: Components) -> dict:
    """The part of cdm.json that must match for --resume to continue the same run."""
    return {
        "pretrained": _where(cfg.pretrained),
        "classes": {c: class_token(c) for c in classes},
        "prompt": cfg.prompt,
        "resolution": cfg.resolution,
        "spatial_tokens": cfg.spatial_tokens,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "prediction_type": comps.prediction_type,
        "vae_scale_factor": comps.vae_scale_factor,
    }


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, components: Components | None = None) -> TrainResult:
    """Train one token per class (and the optional spatial encoder) on a CAI output folder.

    Writes the CDM folder layout of `cdm_folder` to `cfg.out`: embeddings and a
    checkpoint every `checkpoint_every` steps and at the end. `resume=True` continues
    from the newest checkpoint up to `cfg.steps` (the other settings must match the
    stored run); without it, a folder that already holds a run is refused rather than
    overwritten. `components` lets a caller reuse an already loaded base model (several
    runs in one process; tests inspect its weights afterwards); it must be the model
    named by `cfg.pretrained`.
    """
    started = time.perf_counter()
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.checkpoint_every < 1:
        raise DaadError("--steps, --batch-size and --checkpoint-every must be at least 1")
    if cfg.resolution % 8:
        raise DaadError(f"--resolution {cfg.resolution}: must be a multiple of 8")
    out = Path(cfg.out)
    existing = cdm_folder.latest_checkpoint(out)
    if existing is not None and not resume:
        raise DaadError(f"{out}: already holds a training run ({existing.name}); pass --resume to continue it or choose a new --out")
    if resume and existing is None:
        raise DaadError(f"{out}: --resume given but there is no checkpoint in {cdm_folder.checkpoint_dir(out)}")

    if components is None:
        check_pretrained(cfg.pretrained)  # fail before scanning the data, not after
    samples, skipped = find_samples(cfg.data, cfg.classes)
    if not samples:
        raise DaadError(f"{cfg.data}: no usable CAI images" + (f" of class {', '.join(cfg.classes)}" if cfg.classes else ""))
    classes = _class_order(samples, cfg.classes)
    if components is None:
        device = pick_device(cfg.device)
        comps = load_components(cfg.pretrained, device, pick_dtype(cfg.precision, device))
    else:
        comps = components
    device, dtype = comps.device, comps.dtype
    comps.text_encoder.to(dtype=torch.float32)  # gradients pass through it; see module docstring
    learned = build_learned(comps, classes, cfg.spatial_tokens, cfg.seed)

    optimizer = torch.optim.AdamW(learned.parameters(), lr=cfg.lr, weight_decay=0.0)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    generator = torch.Generator().manual_seed(cfg.seed)
    block = _training_block(cfg, classes, comps)
    start, losses = 0, []
    if existing is not None:  # that is, resume (both checked above)
        config = cdm_folder.read_config(out)
        if config.get("training") != block:
            diff = sorted(k for k in block if config.get("training", {}).get(k) != block[k])
            raise DaadError(f"{out}: --resume with different settings than the stored run ({', '.join(diff)})")
        state = torch.load(existing, map_location="cpu", weights_only=False)
        learned.load_state_dict(state["learned"])
        learned.write_rows(comps.text_encoder)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"])
        start, losses = int(state["step"]), list(state["losses"])
        if start >= cfg.steps:
            raise DaadError(f"{out}: the run is already at step {start}; ask for more --steps to continue")
    else:
        for s in samples:
            im = load_image(s.image)
            cdm_folder.save_mask_bank_entry(out, s.anomaly_class, s.image.name, load_mask(s.mask, im.size, binarize=True))

    counts = {c: sum(s.anomaly_class == c for s in samples) for c in classes}

    def save(step: int) -> dict[str, Path]:
        learned.write_rows(comps.text_encoder)
        paths = {c: cdm_folder.save_embedding(out, c, class_token(c), learned.vectors[i]) for i, c in enumerate(classes)}
        if learned.spatial is not None:
            cdm_folder.save_module(out / "spatial_encoder.safetensors", learned.spatial)
        cdm_folder.write_json(out / cdm_folder.CONFIG, {
            "format": "daad-cdm/1",
            "training": block,
            "steps_done": step,
            "steps_requested": cfg.steps,
            "train_data": str(Path(cfg.data).resolve()),
            "samples": counts,
            "embeddings": {c: str(p.relative_to(out)) for c, p in paths.items()},
            "loss_last_50": float(np.mean(losses[-50:])) if losses else None,
            "device": str(device),
            "precision": str(dtype).replace("torch.", ""),
        })
        cdm_folder.save_checkpoint(out, step, {
            "step": step,
            "learned": learned.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": generator.get_state(),
            "losses": losses,
            "config": asdict(cfg),
        })
        return paths

    paths: dict[str, Path] = {}
    learned.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="cdm train", unit="step", disable=not progress)
    for step in bar:
        idx = torch.randint(0, len(samples), (cfg.batch_size,), generator=generator).tolist()
        pairs = [load_pair(samples[i], cfg.resolution) for i in idx]
        pixels = torch.from_numpy(np.stack([p[0] for p in pairs]))
        masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
        prompts = [learned.prompt(cfg.prompt, samples[i].anomaly_class) for i in idx]
        loss = denoising_loss(comps, learned, pixels, masks, prompts, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            paths = save(done)
    learned.detach_hook()
    return TrainResult(out, cfg.steps, counts, losses, skipped, paths, time.perf_counter() - started)
