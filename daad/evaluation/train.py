"""`evaluate`: train the protocol's UNet on normal images + pseudo anomalies, measure it on real test images every epoch.

Choices (the paper defers its hyperparameters to a supplement we do not have):
- Adam, lr 1e-4 and batch 8 by default (DRAEM's lr and a batch that fits 256 px on one
  GPU); `--samples` 1000 pseudo anomalies (the paper's default, Fig. 7d) plus all normal
  images, reshuffled every epoch.
- Seeds: `torch.manual_seed(seed)` before the network is built (initialisation) and a
  numpy generator seeded from (seed, epoch) for the order of each epoch, so the order
  needs no saved state and a resumed run sees exactly the batches of an uninterrupted one.
  On CPU `torch.use_deterministic_algorithms(True)`: the same seed gives bit-identical
  weights and metrics. On CUDA, fp16 autocast + a gradient scaler (cuDNN's
  nondeterministic kernels are allowed there; runs are close, not identical).
- Every epoch the network is evaluated on the whole test set (the paper keeps the best
  of 200 epochs; that looks at the test set, so the mean of the last `last_k` epochs is
  reported beside it). The best epoch is chosen by `select` (default pixel AP).
- `checkpoint.pt` after every epoch (weights, optimiser, scaler, curve), written
  atomically; `resume=True` continues it, refusing when the settings differ.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from daad.core.atomic import atomic_path
from daad.core.errors import DaadError

from . import metrics as M
from .data import ImageSet, load_test_set, load_training_set
from .plots import curve_png, predictions_png
from .unet import DEFAULT_DEPTH, DEFAULT_WIDTH, UNet, focal_loss

RESUMABLE = ("epochs",)  # settings a resumed run may change


@dataclass
class EvalConfig:
    """Everything a run depends on (saved in results.json and the checkpoint)."""

    synthetic: str
    test: str
    out: str
    train_normal: str | None = None
    category: str | None = None
    size: int = 256
    epochs: int = 200
    batch_size: int = 8
    lr: float = 1e-4
    samples: int = 1000
    seed: int = 0
    width: int = DEFAULT_WIDTH
    depth: int = DEFAULT_DEPTH
    device: str = "cpu"
    select: str = "pixel_ap"
    last_k: int = 5


@dataclass
class EvalResult:
    out: Path
    config: EvalConfig
    curve: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    last_mean: dict[str, float] = field(default_factory=dict)
    train_images: int = 0
    train_anomalies: int = 0
    test_images: int = 0
    test_anomalous: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "curve": self.curve, "best": self.best, "last_mean": self.last_mean,
                "train_images": self.train_images, "train_anomalies": self.train_anomalies,
                "test_images": self.test_images, "test_anomalous": self.test_anomalous,
                "skipped": self.skipped, "seconds": round(self.seconds, 1)}

    def summary(self) -> str:
        def fmt(d: dict[str, Any]) -> str:
            return ", ".join(f"{k} {100 * d[k]:.1f}" for k in M.METRICS if d.get(k) is not None)

        k = min(self.config.last_k, len(self.curve))
        lines = [f"trained on {self.train_images} images ({self.train_anomalies} pseudo anomalies), tested on "
                 f"{self.test_images} ({self.test_anomalous} anomalous), {len(self.curve)} epochs in {self.seconds:.1f} s -> {self.out}",
                 f"  best epoch {self.best.get('epoch')} by {self.config.select}: {fmt(self.best)}",
                 f"  mean of the last {k} epochs: {fmt(self.last_mean)}"]
        if self.skipped:
            lines.append(f"  left out {len(self.skipped)}:")
            lines += [f"    {s}" for s in self.skipped]
        return "\n".join(lines)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DaadError(f"--device {device}: no CUDA GPU is available here (torch.cuda.is_available() is False); use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DaadError(f"--device {device}: expected cpu, cuda, cuda:N or auto")
    return torch.device(device)


def _tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def predict(model: UNet, images: np.ndarray, device: torch.device, batch_size: int, amp: bool) -> np.ndarray:
    """Anomaly maps (N, S, S) float32 in [0, 1]: the softmax probability of the anomalous channel."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = _tensor(images[i : i + batch_size], device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def _check_resume(saved: dict[str, Any], config: EvalConfig) -> None:
    now = asdict(config)
    diff = [k for k in now if k not in RESUMABLE and k != "out" and saved.get(k) != now[k]]
    if diff:
        raise DaadError(f"{config.out}: cannot resume, settings differ from the checkpoint's: "
                        + ", ".join(f"{k} {saved.get(k)!r} -> {now[k]!r}" for k in diff))


def evaluate(config: EvalConfig, resume: bool = False, progress: bool = True,
             train: ImageSet | None = None, test: ImageSet | None = None) -> EvalResult:
    """Train and evaluate as the protocol says; write results.json, curve.png, predictions.png, checkpoint.pt in `out`."""
    if config.select not in M.METRICS:
        raise DaadError(f"--select {config.select}: expected one of {', '.join(M.METRICS)}")
    if config.size % 2**config.depth:
        raise DaadError(f"--size {config.size}: must be a multiple of {2 ** config.depth} (the UNet pools {config.depth} times)")
    device = pick_device(config.device)
    amp = device.type == "cuda"
    out = Path(config.out).expanduser()
    start = time.perf_counter()
    train = train if train is not None else load_training_set(config.synthetic, config.size, config.train_normal, config.samples, config.seed)
    test = test if test is not None else load_test_set(config.test, config.size, config.category)
    result = EvalResult(out, config, train_images=len(train), train_anomalies=int(train.masks.reshape(len(train), -1).any(1).sum()),
                        test_images=len(test), test_anomalous=test.anomalous, skipped=train.skipped + test.skipped)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    model = UNet(config.width, config.depth).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    first = 0
    ckpt_path = out / "checkpoint.pt"
    best_state: dict[str, torch.Tensor] | None = None
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        _check_resume(ckpt["config"], config)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        result.curve, first = ckpt["curve"], ckpt["epoch"]
        best_state = ckpt.get("best_model")
    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all = train.images, train.masks
    n = len(train)
    bar = tqdm(range(first, config.epochs), desc="train", unit="epoch", disable=not progress, initial=first, total=config.epochs)
    for epoch in bar:
        model.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        losses = []
        for i in range(0, n, config.batch_size):
            idx = np.sort(order[i : i + config.batch_size])
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = _tensor(x_all[idx], device)
            y = torch.from_numpy(y_all[idx]).to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                logits = model(x)
            loss = focal_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
        maps = predict(model, test.images, device, config.batch_size, amp)
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None, **M.all_metrics(maps, test.masks)}
        result.curve.append(row)
        if best_state is None or _better(row, result.curve[:-1], config.select):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.set_postfix({"loss": f"{row['loss']:.4f}" if row["loss"] is not None else "-", config.select: f"{row[config.select]:.3f}"})
        with atomic_path(ckpt_path) as tmp:
            torch.save({"config": asdict(config), "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scaler": scaler.state_dict(), "curve": result.curve, "epoch": epoch + 1, "best_model": best_state}, tmp)
    bar.close()
    result.best = max(result.curve, key=lambda r: (r[config.select] if r[config.select] is not None else -1.0, -r["epoch"]))
    tail = result.curve[-min(config.last_k, len(result.curve)):]
    result.last_mean = {k: float(np.mean([r[k] for r in tail])) for k in M.METRICS if all(r[k] is not None for r in tail)}
    if best_state is not None:
        model.load_state_dict(best_state)
    best_maps = predict(model, test.images, device, config.batch_size, amp)
    result.seconds = time.perf_counter() - start
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2))
    curve_png(result.curve, out / "curve.png", title=f"{Path(config.synthetic).name} (seed {config.seed})")
    predictions_png(test, best_maps, out / "predictions.png")
    return result


def _better(row: dict[str, Any], earlier: list[dict[str, Any]], key: str) -> bool:
    value = row[key] if row[key] is not None else -1.0
    return all(value > (r[key] if r[key] is not None else -1.0) for r in earlier)
