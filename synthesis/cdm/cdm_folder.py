"""The trained CDM folder: what `daad cdm train` writes and `daad cdm generate` reads.

    cdm/
      cdm.json                          config: base model, class -> token, prompt, resolution, ...
      embeddings/<class>.safetensors    {token: (1, dim) tensor}: diffusers' textual-inversion format,
                                        so `pipe.load_textual_inversion("cdm/embeddings/crack.safetensors")` works
      spatial_encoder.safetensors       only with --spatial-tokens > 0
      masks/<class>/*.png               the CAI masks trained on (downscaled): the mask distribution
                                        generation draws from when the user gives no mask
      checkpoints/step-NNNNNNN.pt       learned state + optimiser + RNG states, for --resume

Every file is written to a temporary name and renamed, so an interrupted run never
leaves a half-written embedding or checkpoint behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from daad.core.atomic import atomic_path
from daad.core.errors import DaadError

CONFIG = "cdm.json"
CHECKPOINT_RE = re.compile(r"^step-(\d+)\.pt$")
MASK_BANK_SIDE = 256  # masks are stored at most this long a side: shape and place matter, not detail


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise DaadError(f"{folder}: no {CONFIG}; expected a folder written by `daad cdm train`")
    return json.loads(path.read_text(encoding="utf-8"))


def embedding_path(folder: str | Path, anomaly_class: str) -> Path:
    return Path(folder) / "embeddings" / f"{anomaly_class}.safetensors"


def save_embedding(folder: str | Path, anomaly_class: str, token: str, vector: torch.Tensor) -> Path:
    """One file per class with the single key `token`: what diffusers' loader expects."""
    from safetensors.torch import save_file

    path = embedding_path(folder, anomaly_class)
    with atomic_path(path) as tmp:
        save_file({token: vector.detach().float().cpu().reshape(1, -1).contiguous()}, str(tmp))
    return path


def load_embedding(folder: str | Path, anomaly_class: str) -> tuple[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = embedding_path(folder, anomaly_class)
    if not path.is_file():
        raise DaadError(f"{path}: no learned embedding for class {anomaly_class!r}")
    (token, vec), = load_file(str(path)).items()
    return token, vec.reshape(-1)


def save_module(path: Path, module: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().float().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))


def load_module(path: Path, module: torch.nn.Module) -> None:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)))


def save_mask_bank_entry(folder: str | Path, anomaly_class: str, name: str, mask: Image.Image) -> Path:
    """Keep one training mask (downscaled, still binary) as a sample of CAI's mask distribution."""
    m = mask.copy()
    if max(m.size) > MASK_BANK_SIDE:
        scale = MASK_BANK_SIDE / max(m.size)
        size = (max(1, round(m.width * scale)), max(1, round(m.height * scale)))
        m = Image.fromarray((np.asarray(m.resize(size, Image.Resampling.BOX)) > 0).astype(np.uint8) * 255, "L")
    path = Path(folder) / "masks" / anomaly_class / f"{Path(name).stem}.png"
    with atomic_path(path) as tmp:
        m.save(tmp, format="PNG")
    return path


def mask_bank(folder: str | Path, anomaly_class: str) -> list[Path]:
    return sorted((Path(folder) / "masks" / anomaly_class).glob("*.png"))


def checkpoint_dir(folder: str | Path) -> Path:
    return Path(folder) / "checkpoints"


def save_checkpoint(folder: str | Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write `checkpoints/step-NNNNNNN.pt` and drop all but the newest `keep`."""
    path = checkpoint_dir(folder) / f"step-{step:07d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    d = checkpoint_dir(folder)
    found = [(int(m.group(1)), p) for p in d.glob("step-*.pt") if (m := CHECKPOINT_RE.match(p.name))] if d.is_dir() else []
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None
