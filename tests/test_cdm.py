"""CDM as a user runs it: train class tokens on a CAI output folder, resume, load them in diffusers, generate.

The base model is a tiny, randomly initialised Stable-Diffusion-shaped pipeline built
here from configs (CLIP tokenizer from a vocabulary written by the test, CLIP text
encoder, AutoencoderKL, UNet2DConditionModel, DDPM scheduler) and saved as a local
folder, so nothing is downloaded. The training data is a folder in `daad synthesize`'s
layout made from real MVTec AD anomalies and their ground-truth masks.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from daad.cli import main
from daad.core.images import load_image, load_mask
from daad.synthesis.cdm import CDM, TrainConfig, class_token, load_components, train
from daad.synthesis.cdm import cdm_folder
from daad.synthesis.cdm.cai_folder import find_samples, load_pair
from daad.synthesis.cdm.generate import blended_latent_diffusion
from daad.synthesis.cdm.train import build_learned, denoising_loss

RES = 32  # training/generation resolution of the tiny model (latents 16x16: the tiny VAE downsamples by 2)
# MVTec AD defect folders -> DAAD classes (as the dataset collector would map them).
CAI_CLASSES = {"capsule/crack": "crack", "capsule/scratch": "scratch", "bottle/contamination": "impurity"}


def _build_tiny_sd(folder: Path) -> None:
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + "<>-_":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (folder / "vocab").mkdir(parents=True)
    (folder / "vocab" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "vocab" / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab" / "vocab.json"), str(folder / "vocab" / "merges.txt"), model_max_length=24)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=24, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(
        sample_size=RES // 2, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    # dicts of Any: diffusers annotates these parameters as 1-tuples (Tuple[str]), the scheduler as
    # an enum and the safety parts as required, though it takes (and its own docs pass) these values.
    vae_config: dict[str, Any] = dict(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64), latent_channels=4, norm_num_groups=32, sample_size=RES)
    vae = AutoencoderKL(**vae_config)
    # A random UNet hardly listens to its text: the cross-attention output is small next to the
    # residual path, so no token embedding could change its prediction much and "the loss
    # falls" would be noise. Amplifying the cross-attention output projections makes the
    # tiny model text-driven, as a trained Stable Diffusion UNet is.
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2.to_out.0"):
                module.weight.mul_(100.0)
                module.bias.mul_(100.0)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    parts: dict[str, Any] = dict(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    StableDiffusionPipeline(**parts).save_pretrained(folder / "sd")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_sd")
    _build_tiny_sd(folder)
    return folder / "sd"


@pytest.fixture(scope="module")
def cai_out(tmp_path_factory, shared_data) -> Path:
    """A `daad synthesize`-layout folder of real anomalies (downscaled to 128 px to keep the test fast)."""
    out = tmp_path_factory.mktemp("cai_out")
    (out / "abnormal").mkdir()
    (out / "mask").mkdir()
    rows = []
    for defect, cls in CAI_CLASSES.items():
        cat, kind = defect.split("/")
        for img in sorted((shared_data / "mvtec_ad" / cat / "test" / kind).glob("*.png")):
            name = f"{cat}_{kind}_{img.stem}.png"
            im = load_image(img)
            m = load_mask(shared_data / "mvtec_ad" / cat / "ground_truth" / kind / f"{img.stem}_mask.png", im.size)
            im.convert("RGB").resize((128, 128), Image.Resampling.BICUBIC).save(out / "abnormal" / name)
            Image.fromarray((np.asarray(m.resize((128, 128), Image.Resampling.BOX)) > 0).astype(np.uint8) * 255).save(out / "mask" / name)
            rows.append({"file": f"abnormal/{name}", "anomaly_class": cls, "seed": 0, "daad_id": "x" * 64})
    # a row whose mask is missing: reported and skipped, the rest is used
    Image.new("RGB", (128, 128)).save(out / "abnormal" / "orphan.png")
    rows.append({"file": "orphan.png", "anomaly_class": "crack"})
    # an image whose class was never decided: there is no token to learn for it
    shutil.copy(out / "abnormal" / "capsule_crack_001.png", out / "abnormal" / "undecided.png")
    shutil.copy(out / "mask" / "capsule_crack_001.png", out / "mask" / "undecided.png")
    rows.append({"file": "undecided.png", "anomaly_class": "unassigned"})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_reader_uses_good_rows_and_names_bad_ones(cai_out: Path):
    samples, skipped = find_samples(cai_out, ["crack", "scratch"])
    assert sorted({s.anomaly_class for s in samples}) == ["crack", "scratch"]
    assert len(samples) == 4
    assert len(skipped) == 1 and "orphan.png" in skipped[0] and "no mask" in skipped[0]
    everything, skipped = find_samples(cai_out)
    assert len(everything) == 8 and {s.anomaly_class for s in everything} == {"crack", "scratch", "impurity"}
    assert len(skipped) == 2 and "undecided.png: class 'unassigned' cannot be learned" in skipped[1]
    x, y = load_pair(samples[0], RES)
    assert x.shape == (3, RES, RES) and y.shape == (1, RES, RES)
    assert set(np.unique(y)) <= {0.0, 1.0} and y.any()  # thin cracks survive downscaling


def test_train_changes_only_the_new_tokens_and_lowers_the_loss(tiny_sd: Path, cai_out: Path, tmp_path: Path):
    comps = load_components(str(tiny_sd))
    before = {name: _state(getattr(comps, name)) for name in ("unet", "vae", "text_encoder")}
    vocab_before = len(comps.tokenizer)

    # A fixed batch: every crack/scratch image 8 times, with fixed timesteps and noise.
    samples, _ = find_samples(cai_out, ["crack", "scratch"])
    samples = samples * 8
    pairs = [load_pair(s, RES) for s in samples]
    pixels = torch.from_numpy(np.stack([p[0] for p in pairs]))
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    fixed = torch.Generator().manual_seed(1)
    fixed_t = torch.randint(0, 1000, (len(samples),), generator=fixed)
    fixed_noise = torch.randn(len(samples), 4, RES // 2, RES // 2, generator=fixed)

    def fixed_loss(learned) -> float:
        prompts = [learned.prompt("a photo of {token}", s.anomaly_class) for s in samples]
        with torch.no_grad():
            return float(denoising_loss(comps, learned, pixels, masks, prompts, torch.Generator().manual_seed(2), fixed_t, fixed_noise))

    initial = build_learned(comps, ["crack", "scratch"], 0)
    loss_before = fixed_loss(initial)
    initial.detach_hook()

    cfg = TrainConfig(pretrained=str(tiny_sd), data=str(cai_out), out=str(tmp_path / "cdm"), classes=["crack", "scratch"],
                      steps=100, batch_size=4, lr=0.2, resolution=RES, checkpoint_every=50, device="cpu")
    result = train(cfg, progress=False, components=comps)
    assert result.samples == {"crack": 2, "scratch": 2}
    assert any("orphan.png" in s for s in result.skipped)

    # The base model is bit-identical, except the new rows of the (resized) token table.
    for name in ("unet", "vae"):
        after = _state(getattr(comps, name))
        assert after.keys() == before[name].keys()
        assert all(torch.equal(after[k], before[name][k]) for k in after), name
    after = _state(comps.text_encoder)
    emb_key = [k for k in after if k.endswith("token_embedding.weight")][0]
    for k in after:
        if k != emb_key:
            assert torch.equal(after[k], before["text_encoder"][k]), k
    assert torch.equal(after[emb_key][:vocab_before], before["text_encoder"][emb_key])
    assert after[emb_key].shape[0] == vocab_before + 2

    # The saved embeddings are the trained ones, moved away from their initial words.
    trained = build_learned(comps, ["crack", "scratch"], 0)
    with torch.no_grad():
        for i, c in enumerate(["crack", "scratch"]):
            token, vec = cdm_folder.load_embedding(tmp_path / "cdm", c)
            assert token == class_token(c) and vec.shape == (32,)
            assert torch.equal(after[emb_key][vocab_before + i], vec)
            assert not torch.allclose(vec, initial.vectors[i])
            trained.vectors[i] = vec
    loss_after = fixed_loss(trained)
    trained.detach_hook()
    print(f"fixed-batch masked loss {loss_before:.4f} -> {loss_after:.4f}")
    assert loss_after < 0.95 * loss_before

    config = cdm_folder.read_config(tmp_path / "cdm")
    assert config["steps_done"] == 100 and config["training"]["classes"] == {"crack": "<daad-crack>", "scratch": "<daad-scratch>"}
    assert [p.name for p in cdm_folder.list_checkpoints(tmp_path / "cdm")] == ["step-0000050.pt", "step-0000100.pt"]
    assert len(cdm_folder.mask_bank(tmp_path / "cdm", "crack")) == 2


def test_resume_continues_the_same_run(tiny_sd: Path, cai_out: Path, tmp_path: Path):
    runner = CliRunner()
    common = ["cdm", "train", "--pretrained", str(tiny_sd), "--data", str(cai_out), "--classes", "crack,impurity",
              "--resolution", str(RES), "--checkpoint-every", "3", "--device", "cpu", "--quiet", "--spatial-tokens", "2"]
    straight = runner.invoke(main, common + ["--steps", "6", "--out", str(tmp_path / "a")])
    assert straight.exit_code == 0, straight.output
    assert "trained 6 steps on 6 CAI images (crack: 2, impurity: 4)" in straight.output
    assert "skipped" in straight.output and "orphan.png" in straight.output

    first = runner.invoke(main, common + ["--steps", "3", "--out", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, common + ["--steps", "6", "--out", str(tmp_path / "b")])
    assert again.exit_code == 1 and "pass --resume" in again.output
    resumed = runner.invoke(main, common + ["--steps", "6", "--out", str(tmp_path / "b"), "--resume"])
    assert resumed.exit_code == 0, resumed.output

    for c in ("crack", "impurity"):
        assert torch.equal(cdm_folder.load_embedding(tmp_path / "a", c)[1], cdm_folder.load_embedding(tmp_path / "b", c)[1])
    a, b = (open(tmp_path / d / "spatial_encoder.safetensors", "rb").read() for d in "ab")
    assert a == b

    changed = runner.invoke(main, common[:-1] + ["0", "--steps", "9", "--out", str(tmp_path / "b"), "--resume"])
    assert changed.exit_code == 1 and "spatial_tokens" in changed.output


def test_embeddings_load_into_a_diffusers_pipeline(tiny_sd: Path, cai_out: Path, tmp_path: Path):
    from diffusers import StableDiffusionPipeline

    cfg = TrainConfig(pretrained=str(tiny_sd), data=str(cai_out), out=str(tmp_path / "cdm"), classes=["scratch"],
                      steps=2, resolution=RES, device="cpu")
    train(cfg, progress=False)
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), local_files_only=True)
    pipe.load_textual_inversion(str(cdm_folder.embedding_path(tmp_path / "cdm", "scratch")))
    token, vec = cdm_folder.load_embedding(tmp_path / "cdm", "scratch")
    row = pipe.tokenizer.convert_tokens_to_ids(token)
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[row].detach(), vec)

    # diffusers' prompt encoding and CDM's own (hook) encoding agree exactly
    cdm = CDM.load(tmp_path / "cdm", device="cpu")
    prompt = cdm.learned.prompt("a photo of {token}", "scratch")
    ours = cdm.learned.encode(cdm.comps.tokenizer, cdm.comps.text_encoder, [prompt])
    theirs, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_generate_keeps_pixels_outside_the_mask(tiny_sd: Path, cai_out: Path, shared_data: Path, tmp_path: Path):
    cfg = TrainConfig(pretrained=str(tiny_sd), data=str(cai_out), out=str(tmp_path / "cdm"), steps=2, resolution=RES, device="cpu")
    train(cfg, progress=False)
    targets = tmp_path / "normal"
    targets.mkdir()
    for name in ("001.png", "002.png"):
        shutil.copy(shared_data / "mvtec_ad" / "bottle" / "test" / "good" / name, targets / name)

    runner = CliRunner()
    res = runner.invoke(main, ["cdm", "generate", "--cdm", str(tmp_path / "cdm"), "--targets", str(targets), "--class", "crack",
                               "--per-image", "2", "--steps", "3", "--out", str(tmp_path / "gen"), "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "wrote 4 images" in res.output
    names = sorted(p.name for p in (tmp_path / "gen" / "abnormal").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "gen" / "mask").iterdir())
    assert names == ["001_crack_000.png", "001_crack_001.png", "002_crack_000.png", "002_crack_001.png"]
    rows = [json.loads(line) for line in (tmp_path / "gen" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in rows) == [f"abnormal/{n}" for n in names]
    assert all(r["mask"] == r["file"].replace("abnormal/", "mask/") for r in rows)
    assert sorted(p.name for p in (tmp_path / "gen" / "normal").iterdir()) == ["001.png", "002.png"]
    bank = {p.name for p in cdm_folder.mask_bank(tmp_path / "cdm", "crack")}
    changed_inside = 0
    for row in rows:
        original = np.asarray(Image.open(row["target_path"]).convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "gen" / row["normal"]).convert("RGB")), original)
        out = np.asarray(Image.open(tmp_path / "gen" / row["file"]))
        mask = np.asarray(Image.open(tmp_path / "gen" / row["mask"]))
        assert out.shape == original.shape and mask.shape == original.shape[:2]
        assert set(np.unique(mask)) == {0, 255}
        assert row["anomaly_class"] == "crack" and row["mask_source"].split("/")[-1] in bank
        assert np.array_equal(out[mask == 0], original[mask == 0])  # exact: original pixels pasted outside the mask
        changed_inside += int((out[mask > 0] != original[mask > 0]).any())
    assert changed_inside == len(rows)

    # A manifest row's seed regenerates its image and mask bit for bit through the Python API.
    row = rows[-1]
    again = CDM.load(tmp_path / "cdm", device="cpu").generate(load_image(row["target_path"]), "crack", seed=row["seed"], steps=3)
    assert np.array_equal(again.image, np.asarray(Image.open(tmp_path / "gen" / row["file"])))
    assert np.array_equal(again.mask, np.asarray(Image.open(tmp_path / "gen" / row["mask"])))

    # Given masks are used as they are; re-running is deterministic and keeps one manifest row per image.
    masks = tmp_path / "masks"
    masks.mkdir()
    given = np.zeros((900, 900), np.uint8)
    given[300:420, 500:700] = 255
    for name in ("001.png", "002.png"):
        Image.fromarray(given).save(masks / name)
    first = np.asarray(Image.open(tmp_path / "gen" / "abnormal" / "001_crack_000.png"))
    for _ in range(2):
        res = runner.invoke(main, ["cdm", "generate", "--cdm", str(tmp_path / "cdm"), "--targets", str(targets), "--class", "crack",
                                   "--per-image", "1", "--steps", "3", "--masks", str(masks), "--out", str(tmp_path / "gen"),
                                   "--device", "cpu", "--quiet"])
        assert res.exit_code == 0, res.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "gen" / "mask" / "001_crack_000.png")), given)
    assert not np.array_equal(first, np.asarray(Image.open(tmp_path / "gen" / "abnormal" / "001_crack_000.png")))
    rows = [json.loads(line) for line in (tmp_path / "gen" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and sum(r["mask_source"].startswith("given:") for r in rows) == 2

    # An untrained class is a one-line error, not a traceback.
    res = runner.invoke(main, ["cdm", "generate", "--cdm", str(tmp_path / "cdm"), "--targets", str(targets), "--class", "hole",
                               "--per-image", "1", "--out", str(tmp_path / "gen2"), "--device", "cpu", "--quiet"])
    assert res.exit_code == 1, res.output
    assert "'hole' was not trained" in res.output and "trained: crack, scratch, impurity" in res.output


def test_blending_keeps_the_background_latents_exactly(tiny_sd: Path, cai_out: Path, tmp_path: Path):
    cfg = TrainConfig(pretrained=str(tiny_sd), data=str(cai_out), out=str(tmp_path / "cdm"), classes=["crack"], steps=1, resolution=RES, device="cpu", spatial_tokens=2)
    train(cfg, progress=False)
    cdm = CDM.load(tmp_path / "cdm", device="cpu")
    samples, _ = find_samples(cai_out, ["crack"])
    x, _ = load_pair(samples[0], RES)
    pixels = torch.from_numpy(x)[None]
    mask = torch.zeros(1, 1, RES, RES)
    mask[..., 8:20, 10:26] = 1
    with torch.no_grad():
        prompt = cdm.learned.prompt("a photo of {token}", "crack")
        assert prompt == "a photo of <daad-crack> <daad-spatial-0> <daad-spatial-1>"
        z = blended_latent_diffusion(cdm.comps, cdm.learned, pixels, mask, prompt, torch.Generator().manual_seed(0), steps=4)
        z0 = cdm.comps.vae.encode(pixels).latent_dist.mode() * cdm.comps.scaling_factor
        roundtrip = cdm.comps.vae.decode(z0 / cdm.comps.scaling_factor).sample.clamp(-1, 1)
    lat = torch.nn.functional.adaptive_max_pool2d(mask, z.shape[-2:]).expand_as(z) > 0
    assert torch.equal(z[~lat], z0[~lat])
    assert not torch.allclose(z[lat], z0[lat])
    err = ((roundtrip - pixels).abs() * 127.5)[(mask == 0).expand_as(pixels)]
    print(f"tiny random VAE round-trip error outside the mask: mean {err.mean():.1f}, max {err.max():.1f} grey levels")


def test_missing_weights_are_a_clear_error(tmp_path: Path, cai_out: Path):
    runner = CliRunner()
    res = runner.invoke(main, ["cdm", "train", "--pretrained", str(tmp_path / "nowhere"), "--data", str(cai_out), "--out", str(tmp_path / "o"), "--steps", "1"])
    assert res.exit_code == 1 and "nowhere: no such folder" in res.output
    (tmp_path / "half" / "unet").mkdir(parents=True)
    res = runner.invoke(main, ["cdm", "train", "--pretrained", str(tmp_path / "half"), "--data", str(cai_out), "--out", str(tmp_path / "o"), "--steps", "1"])
    assert res.exit_code == 1 and "missing tokenizer/, text_encoder/, vae/, scheduler/" in res.output
    res = runner.invoke(main, ["cdm", "train", "--pretrained", "nobody/not-cached-model", "--data", str(cai_out), "--out", str(tmp_path / "o"), "--steps", "1"])
    assert res.exit_code == 1 and "cannot load the pretrained model offline" in res.output


def test_cai_and_cdm_in_one_folder_with_colliding_looking_names_keep_every_file(tiny_sd: Path, cai_out: Path, shared_data: Path, tmp_path: Path):
    """`a/b_x.png` and `a_b/x.png` were one file in CDM's old naming; CAI and CDM now share one writer and one manifest."""
    from daad.synthesis.cai import CAI, Pattern
    from daad.synthesis.cai.output import find_targets, run

    cfg = TrainConfig(pretrained=str(tiny_sd), data=str(cai_out), out=str(tmp_path / "cdm"), classes=["crack"], steps=1, resolution=RES, device="cpu")
    train(cfg, progress=False)
    targets = tmp_path / "normal"
    good = shared_data / "mvtec_ad" / "bottle" / "test" / "good" / "001.png"
    for name in ("a/b_x.png", "a_b/x.png"):
        (targets / name).parent.mkdir(parents=True, exist_ok=True)
        Image.open(good).resize((64, 64)).save(targets / name)
    img = shared_data / "mvtec_ad" / "capsule" / "test" / "crack" / "001.png"
    im = load_image(img)
    pattern = Pattern(np.asarray(im.convert("RGB")), np.asarray(load_mask(shared_data / "mvtec_ad" / "capsule" / "ground_truth" / "crack" / "001_mask.png", im.size)) > 0, "p", "crack")
    out = tmp_path / "out"
    run(CAI([pattern], quota=(1, 1, 0), foreground="full", size=64), find_targets(targets), out, progress=False)
    res = CliRunner().invoke(main, ["cdm", "generate", "--cdm", str(tmp_path / "cdm"), "--targets", str(targets), "--class", "crack",
                                    "--per-image", "2", "--steps", "2", "--out", str(out), "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len({r["file"] for r in rows}) == 8
    assert sorted(p.name for p in (out / "abnormal").iterdir()) == sorted(Path(r["file"]).name for r in rows)
    assert sorted(p.name for p in (out / "mask").iterdir()) == sorted(Path(r["mask"]).name for r in rows)
    assert sorted((r["target"], r.get("method", "cai")) for r in rows) == sorted([("a/b_x.png", "cai")] * 2 + [("a/b_x.png", "cdm")] * 2
                                                                                + [("a_b/x.png", "cai")] * 2 + [("a_b/x.png", "cdm")] * 2)
    assert sorted(p.name for p in (out / "normal").iterdir()) == ["a__b_x.png", "a_b__x.png"]
