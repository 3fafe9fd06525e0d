"""Generating new anomalies with a trained CDM: blended latent diffusion inside a mask of a normal image.

Method (Avrahami et al., "Blended Latent Diffusion", 2023): the normal image is encoded
to latents z0; denoising starts from z0 noised to the first timestep; after every DDIM
step the latents outside the (latent-size) mask are replaced by z0 noised to the next
step's level, and after the last step by z0 itself. The model therefore only invents
content inside the mask, conditioned by "a photo of <daad-class>", while seeing the
real surroundings at every step so the anomaly fits in.

Why paste the original pixels outside the mask at the end: the VAE does not reproduce
an image exactly (Stable Diffusion's VAE changes pixels by a few grey levels, a random
test VAE by far more), and a detector trained on the outputs must not learn "VAE
texture = anomaly". So the output equals the normal image exactly outside the written
mask, and the mask says exactly which pixels were generated. The latent mask is the
pixel mask max-pooled (a superset), so every masked pixel is covered by generated
latents.

Where the mask comes from: the user's mask for the target, or else one of the CAI
masks of that class the model was trained on (`masks/<class>/` in the CDM folder),
resized to the target: CAI already put its anomalies at plausible places (on the
foreground, at the paper's multi-scale sizes), so drawing from its masks keeps that
distribution of shape, size and location.

Where it runs: each target is one item for an engine (`daad.engine`). On Ray, one
long-lived actor per GPU (`Resources(gpus=1)`) loads the pipeline once from a
`CDMSpec` and generates every target it is handed; outputs depend only on (seed,
target index, k), so they are the same bytes wherever they run, and the driver writes
the manifest in target order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from daad.core.errors import BadItemError, DaadError
from daad.core.images import IMAGE_SUFFIXES, load_image, load_mask
from daad.synthesis.cdm import cdm_folder
from daad.synthesis.folder import FolderWriter, Output, stem_for
from daad.synthesis.cdm.model import Components, load_components, pick_device, pick_dtype
from daad.synthesis.cdm.textual_inversion import LearnedTokens, class_token
from daad.core.taxonomy import CLASSES
from daad.engine import Engine, Given, LocalEngine
from daad.engine.journal import Journal


@dataclass
class Generated:
    """One generated pseudo anomaly: image (H,W,3 or H,W uint8), mask (H,W uint8 0/255), provenance."""

    image: np.ndarray
    mask: np.ndarray
    provenance: dict = field(default_factory=dict)


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed per output, so outputs are reproducible one by one."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


class CDM:
    """A trained CDM: configure once (`CDM.load`), then `generate` on any normal image.

    Example:
        cdm = CDM.load("cdm/", device="cuda")
        out = cdm.generate(normal_rgb_array, "crack", seed=3)
        out.image, out.mask, out.provenance
    """

    def __init__(self, folder: Path, config: dict, comps: Components, learned: LearnedTokens):
        self.folder, self.config, self.comps, self.learned = folder, config, comps, learned

    @classmethod
    def load(cls, folder: str | Path, pretrained: str | None = None, device: str = "auto", precision: str = "auto") -> "CDM":
        """Load the base model named in cdm.json (or `pretrained`, e.g. the same model at another path) and the learned tokens."""
        folder = Path(folder)
        config = cdm_folder.read_config(folder)
        training = config["training"]
        dev = pick_device(device)
        comps = load_components(pretrained or training["pretrained"], dev, pick_dtype(precision, dev))
        classes = [c for c in CLASSES if c in training["classes"]]
        dim = comps.text_encoder.get_input_embeddings().weight.shape[1]
        learned = LearnedTokens(classes, dim, int(training["spatial_tokens"]))
        with torch.no_grad():
            for i, c in enumerate(classes):
                token, vec = cdm_folder.load_embedding(folder, c)
                if vec.numel() != dim:
                    raise DaadError(f"{cdm_folder.embedding_path(folder, c)}: embedding has {vec.numel()} values but the text encoder of {comps.source} has {dim}; was it trained on another base model?")
                learned.vectors[i] = vec
        if learned.spatial is not None:
            cdm_folder.load_module(folder / "spatial_encoder.safetensors", learned.spatial)
        learned.to(dev, dtype=comps.dtype)
        learned.eval()
        learned.attach(comps.tokenizer, comps.text_encoder)
        return cls(folder, config, comps, learned)

    @property
    def classes(self) -> list[str]:
        return list(self.learned.classes)

    def draw_mask(self, anomaly_class: str, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """One CAI training mask of the class, resized to `size` (width, height), and its name."""
        bank = cdm_folder.mask_bank(self.folder, anomaly_class)
        if not bank:
            raise DaadError(f"{self.folder}: no stored CAI masks of class {anomaly_class!r} (masks/{anomaly_class}/); give masks with --masks")
        path = bank[int(rng.integers(len(bank)))]
        m = Image.open(path).convert("L").resize(size, Image.Resampling.NEAREST)
        return (np.asarray(m) > 0).astype(np.uint8) * 255, path.name

    @torch.no_grad()
    def generate(
        self,
        image: np.ndarray | Image.Image,
        anomaly_class: str,
        mask: np.ndarray | Image.Image | None = None,
        seed: int = 0,
        steps: int = 50,
        guidance: float = 7.5,
        strength: float = 1.0,
    ) -> Generated:
        """Put an anomaly of `anomaly_class` into `image` inside `mask` (drawn from CAI's masks when None).

        `strength` in (0, 1]: how far into the noise schedule generation starts (1 = from
        almost pure noise inside the mask). Outside the mask the output equals `image`.
        """
        if anomaly_class not in self.classes:
            raise DaadError(f"class {anomaly_class!r} was not trained in {self.folder} (trained: {', '.join(self.classes)})")
        if not 0.0 < strength <= 1.0:
            raise DaadError(f"strength {strength}: must be in (0, 1]")
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        mode = "L" if pil.mode == "L" else "RGB"
        rgb = pil.convert("RGB")
        size = rgb.size
        if mask is None:
            m, mask_source = self.draw_mask(anomaly_class, size, np.random.default_rng(seed))
            mask_source = f"cdm:masks/{anomaly_class}/{mask_source}"
        else:
            m = np.asarray(mask.convert("L") if isinstance(mask, Image.Image) else mask)
            if m.shape[:2] != (size[1], size[0]):
                raise DaadError(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {size[0]}x{size[1]}")
            m = (m > 0).astype(np.uint8) * 255
            mask_source = "given"
        if not m.any():
            raise DaadError("mask is empty: nothing to generate")

        res = int(self.config["training"]["resolution"])
        x = torch.from_numpy(np.asarray(rgb.resize((res, res), Image.Resampling.BICUBIC), dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0)[None]
        pm = torch.from_numpy((np.asarray(Image.fromarray(m).resize((res, res), Image.Resampling.BOX)) > 0).astype(np.float32))[None, None]
        generator = torch.Generator().manual_seed(seed)
        prompt = self.learned.prompt(self.config["training"]["prompt"], anomaly_class)
        z = blended_latent_diffusion(self.comps, self.learned, x, pm, prompt, generator, steps, guidance, strength)
        decoded = self.comps.vae.decode(z.to(self.comps.dtype) / self.comps.scaling_factor).sample
        gen = ((decoded[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        gen = np.asarray(Image.fromarray(gen).resize(size, Image.Resampling.BICUBIC))
        inside = m > 0
        out = np.asarray(rgb).copy()
        out[inside] = gen[inside]
        result = np.asarray(Image.fromarray(out).convert("L")) if mode == "L" else out
        provenance = {
            "method": "cdm",
            "anomaly_class": anomaly_class,
            "token": class_token(anomaly_class),
            "prompt": prompt,
            "seed": seed,
            "steps": steps,
            "guidance": guidance,
            "strength": strength,
            "mask_source": mask_source,
            "mask_area": float(inside.mean()),
            "resolution": res,
            "pretrained": self.comps.source,
        }
        return Generated(result, m, provenance)


@dataclass(frozen=True)
class CDMSpec:
    """A CDM not loaded yet: what a worker needs to load the pipeline itself, once (a `setup` for an engine)."""

    folder: str
    pretrained: str | None = None
    device: str = "auto"
    precision: str = "auto"

    def __call__(self) -> CDM:
        return CDM.load(self.folder, pretrained=self.pretrained, device=self.device, precision=self.precision)

    @property
    def classes(self) -> list[str]:
        trained = cdm_folder.read_config(self.folder)["training"]["classes"]
        return [c for c in CLASSES if c in trained]


def blended_latent_diffusion(
    comps: Components,
    learned: LearnedTokens,
    pixels: torch.Tensor,
    mask: torch.Tensor,
    prompt: str,
    generator: torch.Generator,
    steps: int = 50,
    guidance: float = 7.5,
    strength: float = 1.0,
) -> torch.Tensor:
    """Denoise inside `mask` only; returns final latents, equal to the image's latents z0 outside the latent mask.

    pixels (1,3,H,W) in [-1,1]; mask (1,1,H,W) in {0,1}. Classifier-free guidance with
    the empty prompt; DDIM (eta 0) with the base model's noise schedule.
    """
    from diffusers import DDIMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    device, dtype = comps.device, comps.dtype
    # Any: from_config is typed as maybe returning (scheduler, unused kwargs), which it does only
    # with return_unused_kwargs=True, and DDIMScheduler types timesteps as int / IntTensor while
    # its own pipelines pass the LongTensor entries of .timesteps, as this loop does.
    scheduler = cast(Any, DDIMScheduler.from_config(comps.scheduler.config))
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps[steps - max(1, round(steps * strength)):]
    z0 = comps.vae.encode(pixels.to(device, dtype)).latent_dist.mode() * comps.scaling_factor
    m = F.adaptive_max_pool2d(mask.float(), z0.shape[-2:]).to(device, dtype)
    noise = randn_tensor(z0.shape, generator=generator, device=device, dtype=dtype)
    z = scheduler.add_noise(z0, noise, timesteps[:1])
    masks = mask.to(device)
    cond = learned.encode(comps.tokenizer, comps.text_encoder, [prompt], masks=masks).to(dtype)
    uncond = learned.encode(comps.tokenizer, comps.text_encoder, [""]).to(dtype)
    context = torch.cat([uncond, cond])
    for i, t in enumerate(timesteps):
        eps_u, eps_c = comps.unet(torch.cat([z, z]), t, context).sample.chunk(2)
        eps = eps_u + guidance * (eps_c - eps_u)
        z = scheduler.step(eps, t, z).prev_sample
        background = scheduler.add_noise(z0, noise, timesteps[i + 1:i + 2]) if i + 1 < len(timesteps) else z0
        z = m * z + (1 - m) * background
    return z


@dataclass
class GenerateReport:
    out: Path
    written: int = 0
    skipped: list[str] = field(default_factory=list)
    kept: int = 0  # targets complete from an earlier run with the same settings, not generated again

    def summary(self) -> str:
        kept = f" ({self.kept} targets already complete, kept)" if self.kept else ""
        lines = [f"wrote {self.written} images{kept} to {self.out / 'abnormal'} (masks in {self.out / 'mask'}, provenance in {self.out / 'manifest.jsonl'})"]
        return "\n".join(lines + [f"skipped {s}" for s in self.skipped])


def list_targets(targets: str | Path) -> list[Path]:
    path = Path(targets)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DaadError(f"{targets}: no such file or folder of normal images")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def target_key(target: Path, targets: str | Path) -> str:
    """A target's key: its path under --targets (its file name when --targets is one file), as CAI keys it."""
    root = Path(targets)
    return target.name if root.is_file() else target.relative_to(root).as_posix()


@dataclass(frozen=True)
class _Params:
    writer: FolderWriter  # pickled to each worker: it writes the files there, the driver gathers the rows
    anomaly_class: str
    per_image: int
    masks: Path | None
    seed: int
    steps: int
    guidance: float
    strength: float


class _Setup:
    """Per worker: the CDM (loaded here from a spec, or the one already loaded) and the run's parameters."""

    def __init__(self, cdm: CDM | CDMSpec, params: _Params):
        self.cdm, self.params = cdm, params

    def __call__(self) -> tuple[CDM, _Params]:
        return (self.cdm() if isinstance(self.cdm, CDMSpec) else self.cdm), self.params


def _generate_target(state: tuple[CDM, _Params], job: tuple[int, Path, str]) -> tuple[list[dict], list[str]]:
    """All `per_image` outputs of one target, written by the run's Folder writer where this runs;
    (manifest rows, skip messages) go back to the driver once the files are on disk."""
    cdm, p = state
    ti, target, key = job
    stem = stem_for(key)
    try:
        image = load_image(target)
        mask = None
        if p.masks is not None:
            mpath = p.masks / f"{stem}.png"
            if not mpath.is_file():
                raise BadItemError(target, f"no mask {mpath}")
            mask = load_mask(mpath, image.size, binarize=True)
    except BadItemError as exc:
        return [], [str(exc)]
    outputs, skipped = [], []
    for k in range(p.per_image):
        s = derive_seed(p.seed, ti, k)
        try:
            res = cdm.generate(image, p.anomaly_class, mask=mask, seed=s, steps=p.steps, guidance=p.guidance, strength=p.strength)
        except DaadError as exc:
            skipped.append(f"{target}: {exc}")
            break
        provenance = {"cdm": str(cdm.folder.resolve()), **res.provenance}
        if p.masks is not None:
            provenance["mask_source"] = f"given:{(p.masks / f'{stem}.png').resolve()}"
        outputs.append(Output(f"{p.anomaly_class}_{k:03d}", res.image, res.mask, provenance))
    rows, bad = p.writer.write(key, target, np.asarray(image), outputs)
    p.writer.wait()
    return rows, skipped + bad


def _fingerprint(folder: str | Path, p: _Params) -> str:
    """What a target's outputs depend on besides the target: the trained CDM (config, this class's token) and the settings."""
    h = hashlib.sha256((Path(folder) / cdm_folder.CONFIG).read_bytes())
    h.update(cdm_folder.embedding_path(folder, p.anomaly_class).read_bytes())
    spatial = Path(folder) / "spatial_encoder.safetensors"
    if spatial.is_file():
        h.update(spatial.read_bytes())
    h.update(json.dumps([p.anomaly_class, p.per_image, str(p.masks.resolve()) if p.masks else None, p.seed, p.steps,
                         p.guidance, p.strength]).encode())
    return h.hexdigest()


def generate_folder(
    cdm: CDM | CDMSpec,
    targets: str | Path,
    anomaly_class: str,
    out: str | Path,
    per_image: int = 10,
    masks: str | Path | None = None,
    seed: int = 0,
    steps: int = 50,
    guidance: float = 7.5,
    strength: float = 1.0,
    progress: bool = True,
    engine: Engine | None = None,
) -> GenerateReport:
    """Write `per_image` anomalies per normal image in the anomalib-Folder layout of CAI.

    Written by the Folder writer (`daad.synthesis.folder`, CAI's naming):
    `out/abnormal/<stem>_<class>_<k>.png`, `out/mask/` with the same names, the normal
    image itself as `out/normal/<stem>.png` (CDM works at the image's own size), and one
    manifest.jsonl row per image with CAI's keys (file, mask, normal, target_path,
    target, anomaly_class) plus CDM's provenance (seed, mask source, prompt, steps,
    guidance, ...). Rows of other classes or runs in `out` stay; a re-run replaces its rows.
    With `masks`, a target `x.png` uses `masks/x.png` (binary, same size; a target in a
    subfolder `a/x.png` uses `masks/a__x.png`, the target's stem); a target without one
    is reported and skipped. A bad target is reported and skipped too.
    `engine` decides where targets run (default: this process); give a `CDMSpec`
    instead of a loaded CDM so that each worker loads the pipeline itself, once. A
    re-run with the same CDM and settings skips targets whose outputs are complete
    (journal `out/.daad-run-cdm-<class>.jsonl`, written by this process only).
    """
    if anomaly_class not in cdm.classes:
        raise DaadError(f"class {anomaly_class!r} was not trained in {cdm.folder} (trained: {', '.join(cdm.classes)})")
    out = Path(out).expanduser()
    engine = engine or LocalEngine(1)
    files = list_targets(targets)
    if not files:
        raise DaadError(f"{targets}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    readable: list[Any] = sorted({f.parent for f in files}) + [cdm.folder] + ([masks] if masks is not None else [])
    engine.check_paths(readable=readable, writable=[out])
    settings = {"seed": seed, "steps": steps, "guidance": guidance, "strength": strength, "per_image": per_image,
                "cdm": str(Path(cdm.folder).resolve()), "masks": str(Path(masks).resolve()) if masks is not None else None}
    # strict=False: classes are added one run at a time and re-runs with new settings replace their rows.
    writer = FolderWriter(out, run=f"cdm:{anomaly_class}", settings=settings, strict=False)
    report = GenerateReport(out)
    params = _Params(writer, anomaly_class, per_image, Path(masks) if masks is not None else None, seed, steps, guidance, strength)
    setup = Given((cdm, params)) if isinstance(cdm, CDM) and engine.workers <= 1 and isinstance(engine, LocalEngine) else _Setup(cdm, params)
    jobs = [(ti, target, target_key(target, targets)) for ti, target in enumerate(files)]
    results: list[tuple[list[dict], list[str]]] = [([], [])] * len(jobs)
    journal = Journal(out / f".daad-run-cdm-{anomaly_class}.jsonl", _fingerprint(cdm.folder, params))
    earlier = journal.load()
    todo = []
    for i, (_, _, key) in enumerate(jobs):
        rows = earlier.get(key)
        if rows and len(rows) == per_image and all((out / r[k]).is_file() for r in rows for k in ("file", "mask", "normal")):
            results[i] = (rows, [])
            writer.add(rows)
        else:
            todo.append(i)
    pending = set(todo)
    journal.start({jobs[i][2]: results[i][0] for i in range(len(jobs)) if i not in pending})
    with tqdm(total=len(files) * per_image, initial=(len(jobs) - len(todo)) * per_image, desc=f"cdm generate {anomaly_class}",
              unit="img", disable=not progress) as bar:
        try:
            for j, result in engine.imap(_generate_target, [jobs[i] for i in todo], setup=setup):
                results[todo[j]] = result
                writer.add(result[0])
                if not result[1] and len(result[0]) == per_image:
                    journal.record(jobs[todo[j]][2], result[0])
                bar.update(per_image)
        finally:
            journal.close()
    journal.finish((key, results[i][0]) for i, (_, _, key) in enumerate(jobs) if not results[i][1] and len(results[i][0]) == per_image)
    writer.finish()
    report.skipped = [m for _, ms in results for m in ms]
    report.written = sum(len(rs) for rs, _ in results)
    report.kept = len(jobs) - len(todo)
    return report
