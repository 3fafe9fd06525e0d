"""The frozen latent diffusion model CDM builds on: loaded from what the user points at, offline.

Why offline: DAAD runs on inspection-line machines and in CI where nothing may be
downloaded behind the user's back. A Stable-Diffusion-style model is a folder with
`tokenizer/`, `text_encoder/`, `vae/`, `unet/` and `scheduler/` (what
`StableDiffusionPipeline.save_pretrained` or `huggingface-cli download` writes); a hub
id is accepted only when it is already in the local Hugging Face cache.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from daad.core.errors import DaadError
from daad.core.locations import NotFoundError, folder_or_hub_id

SUBFOLDERS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")


class ModelNotFoundError(DaadError):
    """The pretrained weights are not where the user said (we never download them)."""


@dataclass
class Components:
    """The parts of a Stable-Diffusion-style pipeline that CDM uses, all frozen."""

    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    scheduler: Any
    source: str
    device: torch.device
    dtype: torch.dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along a side (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def prediction_type(self) -> str:
        """epsilon (SD 1.x, the paper's Eq. 5) or v_prediction (SD 2.x at 768 px)."""
        return str(self.scheduler.config.get("prediction_type", "epsilon"))


def pick_device(device: str = "auto") -> torch.device:
    """`auto` -> cuda when present, else cpu; an explicit cuda request without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DaadError(f"--device {device}: no CUDA GPU is visible to torch (torch {torch.__version__})")
    return dev


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """`auto` -> fp16 on GPU (half the memory, the usual SD setting), fp32 on CPU (fp16 CPU kernels are slow or missing)."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision == "fp16":
        if device.type != "cuda":
            raise DaadError("--precision fp16 needs --device cuda; CPU runs in fp32")
        return torch.float16
    if precision == "fp32":
        return torch.float32
    raise DaadError(f"unknown precision {precision!r}; expected auto, fp16 or fp32")


@contextlib.contextmanager
def _quiet_hf() -> Iterator[None]:
    """Silence diffusers/transformers info chatter and per-file loading bars while loading; errors still surface."""
    import diffusers
    import transformers

    old_d = diffusers.utils.logging.get_verbosity()
    old_t = transformers.utils.logging.get_verbosity()
    bars_d = diffusers.utils.logging.is_progress_bar_enabled()
    bars_t = transformers.utils.logging.is_progress_bar_enabled()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers.utils.logging.set_verbosity(old_d)
        transformers.utils.logging.set_verbosity(old_t)
        if bars_d:
            diffusers.utils.logging.enable_progress_bar()
        if bars_t:
            transformers.utils.logging.enable_progress_bar()


def check_pretrained(pretrained: str) -> None:
    """Raise ModelNotFoundError with what is missing, before any library prints a traceback."""
    try:
        where = folder_or_hub_id(pretrained)
    except NotFoundError as exc:
        raise ModelNotFoundError(str(exc)) from None
    if isinstance(where, Path):
        path = where
        if not path.is_dir():
            raise ModelNotFoundError(f"{pretrained}: not a folder; expected a Stable-Diffusion-style folder with {', '.join(s + '/' for s in SUBFOLDERS)}")
        missing = [s for s in SUBFOLDERS if not (path / s).is_dir()]
        if missing:
            raise ModelNotFoundError(f"{pretrained}: missing {', '.join(s + '/' for s in missing)}; expected a Stable-Diffusion-style folder (e.g. `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir {pretrained}`)")


def load_components(pretrained: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Components:
    """Load tokenizer, text encoder, VAE, UNet and noise scheduler, frozen, from a folder or cached hub id.

    Nothing is downloaded (`local_files_only=True`). Every module is put in eval mode
    with `requires_grad=False`: CDM learns only new token embeddings (and the optional
    spatial encoder), the base model stays exactly as it was.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    check_pretrained(pretrained)
    device = torch.device(device)
    where = str(Path(pretrained).expanduser()) if Path(pretrained).expanduser().exists() else pretrained
    try:
        with _quiet_hf():
            tokenizer = CLIPTokenizer.from_pretrained(where, subfolder="tokenizer", local_files_only=True)
            text_encoder = CLIPTextModel.from_pretrained(where, subfolder="text_encoder", local_files_only=True)
            vae = AutoencoderKL.from_pretrained(where, subfolder="vae", local_files_only=True)
            unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet", local_files_only=True)
            scheduler = DDPMScheduler.from_pretrained(where, subfolder="scheduler", local_files_only=True)
            for module in (text_encoder, vae, unet):
                _freeze(module, device, dtype)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"{pretrained}: cannot load the pretrained model offline ({first}); point --pretrained at a local Stable Diffusion folder") from None
    return Components(tokenizer, text_encoder, vae, unet, scheduler, source=str(pretrained), device=device, dtype=dtype)


def _freeze(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Eval mode, no gradients, on `device` in `dtype`.

    Typed as a plain Module: diffusers and transformers wrap `.to` with functools.wraps,
    which pyright reads as an unbound function on their classes.
    """
    module.requires_grad_(False)
    module.eval()
    module.to(device=device, dtype=dtype)
