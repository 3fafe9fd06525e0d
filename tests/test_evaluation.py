"""The evaluation protocol (daad.evaluation): metrics against references, a real tiny training, baselines, `daad compare`.

Everything runs on CPU at 32 px on a handful of real Magnetic Tile images, so the file
stays within seconds per test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from daad.cli import main
from daad.evaluation import metrics as M

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these networks are tiny, and on a shared 2-core machine two threads ran 2.5x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- metrics -------------------------------------------------------------------------


def _maps() -> tuple[np.ndarray, np.ndarray]:
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:6, 2:10] = True  # two regions in image 0, one in image 1, image 2 normal
    masks[0, 10:14, 10:14] = True
    masks[1, 4:12, 4:8] = True
    return masks.astype(float), masks


def brute_pro(maps: np.ndarray, masks: np.ndarray, limit: float = 0.3) -> float:
    """PRO threshold by threshold, straight from the definition (regions per image, 8-connected)."""
    from scipy import ndimage

    regs = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regs += [(i, lab == k) for k in range(1, n + 1)]
    neg = ~masks
    pts = [(0.0, 0.0)]
    for t in sorted(np.unique(maps), reverse=True):
        above = maps >= t
        pts.append((float((above & neg).sum() / neg.sum()), float(np.mean([above[i][r].mean() for i, r in regs]))))
    fpr, pro = np.array(pts).T
    return M.area_to(fpr, pro, limit)


def test_perfect_and_inverted_maps():
    maps, masks = _maps()
    assert M.pixel_auroc(maps, masks) == 1.0 and M.pixel_ap(maps, masks) == 1.0
    assert M.pro_score(maps, masks) == pytest.approx(1.0) and M.image_auroc(maps, masks) == 1.0
    inv = 1.0 - maps
    assert M.pixel_auroc(inv, masks) == 0.0
    assert M.pro_score(inv, masks) == pytest.approx(0.0)


def test_pro_of_a_map_covering_half_of_each_region():
    """Score 1 on the left half of each region, 0 elsewhere: PRO 0.5 at FPR 0, 1 at FPR 1.

    Linear in between, so PRO(0.3) = 0.65 and the normalised area is (0.5 + 0.65) / 2 = 0.575.
    """
    _, masks = _maps()
    maps = np.zeros(masks.shape)
    maps[0, 2:6, 2:6] = maps[0, 10:14, 10:12] = maps[1, 4:12, 4:6] = 1.0
    assert M.pro_score(maps, masks) == pytest.approx(0.575)
    assert brute_pro(maps, masks) == pytest.approx(0.575)


def test_metrics_agree_with_references_on_noisy_maps():
    from sklearn.metrics import average_precision_score, roc_auc_score

    _, masks = _maps()
    rng = np.random.default_rng(0)
    maps = np.round(rng.random(masks.shape) * 0.6 + masks * 0.4, 2)  # ties on purpose
    assert M.pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))
    assert M.pixel_ap(maps, masks) == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()))
    assert M.pro_score(maps, masks) == pytest.approx(brute_pro(maps, masks), abs=1e-12)
    assert 0.0 < M.pro_score(maps, masks) < 1.0


# -- real data at 32 px ---------------------------------------------------------------


def _tile_set(root: Path, shared_data: Path, normal: slice, kinds: tuple[str, ...], nth: int, good: slice) -> dict[str, Path]:
    """A Magnetic Tile train/test pair in `root`: MT_Free[normal] to train on; the `nth` image of each defect kind
    (with its mask) and MT_Free[good] to test on."""
    free = sorted((shared_data / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))
    (root / "normal").mkdir()
    for p in free[normal]:
        shutil.copy(p, root / "normal" / p.name)
    test = root / "test"
    (test / "images").mkdir(parents=True)
    (test / "masks").mkdir()
    for kind in kinds:
        p = sorted((shared_data / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[nth]
        shutil.copy(p, test / "images" / p.name)
        shutil.copy(p.with_suffix(".png"), test / "masks" / p.with_suffix(".png").name)
    for p in free[good]:
        shutil.copy(p, test / "images" / p.name)
    return {"root": root, "normal": root / "normal", "test": test}


@pytest.fixture(scope="module")
def tile(shared_data, tmp_path_factory) -> dict[str, Path]:
    """6 normal Magnetic Tile images for training; a test folder of 4 defects + 2 other normal images."""
    return _tile_set(tmp_path_factory.mktemp("eval"), shared_data, slice(0, 6),
                     ("MT_Blowhole", "MT_Crack", "MT_Break", "MT_Uneven"), 0, slice(6, 8))


def _synthesise(synth, normal: Path, out: Path):
    from daad.synthesis.cai.output import find_targets, run

    return run(synth, find_targets(normal), out, progress=False)


def _check_folder(out: Path, expected: int) -> None:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == expected
    abnormal = sorted(p.name for p in (out / "abnormal").iterdir())
    assert abnormal == sorted(p.name for p in (out / "mask").iterdir())
    for name in abnormal:
        m = np.asarray(Image.open(out / "mask" / name))
        assert set(np.unique(m)) <= {0, 255} and m.any(), name
        assert Image.open(out / "abnormal" / name).size == m.shape[::-1]


def _baselines(tile: dict[str, Path], shared_data: Path, seed: int):
    from daad.synthesis.baselines import DRAEM, NSA, CutPaste
    from daad.synthesis.cai.output import find_targets

    normals = [(t.key, np.asarray(Image.open(t.path).convert("L"))) for t in find_targets(tile["normal"])]
    textures = sorted((shared_data / "crackforest" / "image").glob("*.jpg"))[:4]
    return {"cutpaste": CutPaste(size=32, per_image=3, seed=seed), "cutpaste-scar": CutPaste(mode="scar", size=32, per_image=3, seed=seed),
            "nsa-n": NSA(normals, size=32, per_image=3, seed=seed), "nsa-m": NSA(normals, mode="mixed", size=32, per_image=3, seed=seed),
            "draem": DRAEM(textures, size=32, per_image=3, seed=seed)}


def test_each_baseline_writes_a_valid_folder_deterministically(tile, shared_data, tmp_path):
    for name, synth in _baselines(tile, shared_data, seed=1).items():
        a, b = tmp_path / f"{name}-a", tmp_path / f"{name}-b"
        _synthesise(synth, tile["normal"], a)
        _synthesise(_baselines(tile, shared_data, seed=1)[name], tile["normal"], b)
        _check_folder(a, 18)
        for f in sorted((a / "abnormal").iterdir()):
            assert f.read_bytes() == (b / "abnormal" / f.name).read_bytes(), f"{name}: {f.name} differs between runs"
        assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()


def test_cai_ablations_and_paper_recipe_make_valid_injections(shared_data):
    from daad.evaluation.methods import build, split_methods
    from daad.synthesis.cai import Pattern

    pats = []
    for kind in ("MT_Crack", "MT_Break", "MT_Uneven"):
        for p in sorted((shared_data / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[:3]:
            pats.append(Pattern(np.asarray(Image.open(p).convert("RGB")), np.asarray(Image.open(p.with_suffix(".png")).convert("L")) > 128, id=p.name))
    target = np.asarray(Image.open(sorted((shared_data / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))[0]).convert("L"))
    specs = "cai-n,cai-m,cai-n:no-pe,cai-n:no-stm,cai-n:no-ils,cai-n:split=2,2,6,cai-n:mask=paper,cai-paper-n,cai-paper-m"
    for method in split_methods(specs):
        synth = build(method, seed=0, size=64, per_image=10, pool=pats, foreground="full")
        out = synth(target, key="t.jpg")
        assert len(out) == 10, method.spec
        assert all(set(np.unique(i.mask)) <= {0, 255} and i.mask.any() for i in out), method.spec
        if method.spec == "cai-n:split=2,2,6":
            assert [i.provenance["scale"] for i in out].count("small") == 6
        again = build(method, seed=0, size=64, per_image=10, pool=pats, foreground="full")(target, key="t.jpg")
        assert all(np.array_equal(x.image, y.image) for x, y in zip(out, again)), method.spec


@pytest.fixture(scope="module")
def cutpaste_folder(tile, tmp_path_factory) -> Path:
    from daad.synthesis.baselines import CutPaste

    out = tmp_path_factory.mktemp("cp") / "cutpaste"
    _synthesise(CutPaste(size=32, per_image=4, seed=0), tile["normal"], out)
    return out


def _config(tile, folder: Path, out: Path, epochs: int):
    from daad.evaluation import EvalConfig

    return EvalConfig(synthetic=str(folder), test=str(tile["test"]), out=str(out), train_normal=str(tile["normal"]),
                      size=32, epochs=epochs, batch_size=6, lr=3e-3, width=4, depth=3, samples=24, last_k=2)


def test_training_lowers_the_loss_is_repeatable_and_resumes(tile, cutpaste_folder, tmp_path):
    import torch

    from daad.evaluation import evaluate

    a = evaluate(_config(tile, cutpaste_folder, tmp_path / "a", 3), progress=False)
    losses = [r["loss"] for r in a.curve]
    assert losses[-1] < losses[0]
    for row in a.curve:
        assert all(0.0 <= row[k] <= 1.0 for k in M.METRICS)
    b = evaluate(_config(tile, cutpaste_folder, tmp_path / "b", 3), progress=False)
    assert a.curve == b.curve
    wa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    evaluate(_config(tile, cutpaste_folder, tmp_path / "c", 2), progress=False)
    c = evaluate(_config(tile, cutpaste_folder, tmp_path / "c", 3), resume=True, progress=False)
    assert c.curve == a.curve
    wc = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["best"]["epoch"] in (1, 2, 3) and set(res["last_mean"]) == set(M.METRICS)
    assert (tmp_path / "a" / "curve.png").stat().st_size > 0 and (tmp_path / "a" / "predictions.png").stat().st_size > 0


def test_bad_pairs_are_reported_and_the_rest_is_used(tile, cutpaste_folder, tmp_path):
    from daad.evaluation.data import load_training_set

    folder = tmp_path / "bad"
    shutil.copytree(cutpaste_folder, folder)
    names = sorted(p.name for p in (folder / "mask").iterdir())
    (folder / "mask" / names[0]).unlink()  # unpaired
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "mask" / names[1])  # empty
    Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)).save(folder / "mask" / names[2])  # not binary
    ts = load_training_set(folder, 32, tile["normal"], samples=None)
    assert len(ts.skipped) == 3
    assert any("no mask" in s for s in ts.skipped) and any("empty mask" in s for s in ts.skipped) and any("not binary" in s for s in ts.skipped)
    assert len(ts) == 6 + len(names) - 3


def test_cli_errors_are_one_line(tile, cutpaste_folder, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["compare", "--train-normal", str(tile["normal"]), "--test", str(tile["test"]), "--methods", "cutpaste,foo", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "unknown method 'foo'" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["evaluate", "--synthetic", str(cutpaste_folder), "--test", str(tile["test"]), "--out", str(tmp_path / "y"),
                             "--size", "32", "--epochs", "1", "--device", "cuda"])
    import torch

    if not torch.cuda.is_available():
        assert r.exit_code != 0 and "Error: --device cuda: no CUDA GPU" in r.output and len(r.output.strip().splitlines()) == 1
    no_masks = tmp_path / "nomasks"
    (no_masks / "images").mkdir(parents=True)
    for p in sorted((tile["test"] / "images").iterdir())[:2]:
        shutil.copy(p, no_masks / "images" / p.name)
    r = runner.invoke(main, ["evaluate", "--synthetic", str(cutpaste_folder), "--test", str(no_masks), "--out", str(tmp_path / "z"), "--size", "32", "--epochs", "1"])
    assert r.exit_code != 0 and "no anomalous test image" in r.output and len(r.output.strip().splitlines()) == 1


def test_compare_end_to_end(tile, shared_data, tmp_path):
    out = tmp_path / "cmp"
    textures = tmp_path / "textures"
    textures.mkdir()
    for p in sorted((shared_data / "crackforest" / "image").glob("*.jpg"))[:3]:
        shutil.copy(p, textures / p.name)
    args = ["compare", "--train-normal", str(tile["normal"]), "--test", str(tile["test"]), "--methods", "cutpaste,cutpaste-scar,nsa-n,draem",
            "--textures", str(textures), "--per-image", "2", "--size", "32", "--epochs", "2",
            "--batch-size", "6", "--lr", "3e-3", "--width", "4", "--depth", "3", "--last-k", "2", "--seeds", "2", "--quiet", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert [row["method"] for row in res["rows"]] == ["cutpaste", "cutpaste-scar", "nsa-n", "draem"]
    assert all(len(row["runs"]) == 2 for row in res["rows"])
    md = (out / "results.md").read_text()
    assert all(f"| {m} |" in md for m in ("cutpaste", "cutpaste-scar", "nsa-n", "draem")) and "**" in md
    assert (out / "results.png").stat().st_size > 0
    assert (out / "cutpaste" / "manifest.jsonl").is_file() and (out / "cutpaste@1" / "manifest.jsonl").is_file()
    args[args.index("--methods") + 1], args[args.index("--seeds") + 1] = "cutpaste", "1"
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "cutpaste seed 0: " in again.output and "is complete, not synthesised again" in again.output


@pytest.fixture(scope="module")
def tile_b(shared_data, tmp_path_factory) -> dict[str, Path]:
    """A second Magnetic Tile test set with its own normal training images (other files than `tile`'s); its folder is also named test."""
    return _tile_set(tmp_path_factory.mktemp("eval_b"), shared_data, slice(8, 14),
                     ("MT_Blowhole", "MT_Crack", "MT_Break"), 1, slice(14, 17))


TINY = ["--methods", "cutpaste", "--per-image", "2", "--size", "32", "--epochs", "2", "--batch-size", "6", "--lr", "3e-3",
        "--width", "4", "--depth", "3", "--last-k", "2", "--seed", "5", "--quiet"]


def _runs(rows: list) -> list:
    return [(r["method"], [(run["seed"], run["best"], run["best_epoch"], run["last"]) for run in r["runs"]], r["best"], r["last"]) for r in rows]


def test_compare_over_two_test_sets_equals_two_single_sweeps(tile, tile_b, tmp_path):
    """1 method x 2 test sets x 1 seed in one sweep: per test set the rows of that test set's own sweep; mismatched counts: one line."""
    runner = CliRunner()
    for name, t in (("a", tile), ("b", tile_b)):
        r = runner.invoke(main, ["compare", "--train-normal", str(t["normal"]), "--test", str(t["test"]), *TINY, "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    out = tmp_path / "both"
    r = runner.invoke(main, ["compare", "--test", str(tile["test"]), "--train-normal", str(tile["normal"]),
                             "--test", str(tile_b["test"]), "--train-normal", str(tile_b["normal"]), *TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cutpaste on test seed 5: " in r.output and "cutpaste on test-2 seed 5: " in r.output and "mean over 2 test sets:" in r.output
    res = json.loads((out / "results.json").read_text())
    assert [(t["name"], t["test"]) for t in res["tests"]] == [("test", str(tile["test"])), ("test-2", str(tile_b["test"]))]
    singles = [json.loads((tmp_path / n / "results.json").read_text())["rows"] for n in ("a", "b")]
    assert [_runs(t["rows"]) for t in res["tests"]] == [_runs(rows) for rows in singles]
    a, b = singles[0][0]["runs"][0]["best"], singles[1][0]["runs"][0]["best"]
    mean = res["mean"][0]
    assert mean["method"] == "cutpaste" and [run["seed"] for run in mean["runs"]] == [5]
    assert mean["best"]["mean"] == pytest.approx({k: (a[k] + b[k]) / 2 for k in a if a[k] is not None and b[k] is not None})
    for name, single in (("test", "a"), ("test-2", "b")):  # each test set's folders under OUT/<name>/, the single sweep's bytes
        manifest = (out / name / "cutpaste" / "manifest.jsonl").read_text()
        assert manifest == (tmp_path / single / "cutpaste" / "manifest.jsonl").read_text()
        assert (out / name / "eval" / "cutpaste@5" / "results.json").is_file()
    md = (out / "results.md").read_text()
    assert md.index("## Mean over the 2 test sets") < md.index(f"## test: {tile['test']}") < md.index(f"## test-2: {tile_b['test']}")
    assert md.count("| cutpaste |") == 6 and (out / "results.png").stat().st_size > 0

    bad = runner.invoke(main, ["compare", "--test", str(tile["test"]), "--test", str(tile_b["test"]), "--train-normal", str(tile["normal"]),
                               *TINY, "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and bad.output.strip().splitlines() == [
        "Error: 2 test sets but 1 --train-normal folders: give one per test set, in the same order"]
    bad = runner.invoke(main, ["compare", "--test", str(tile["test"]), "--train-normal", str(tile["normal"]), "--category", "x",
                               "--category", "y", *TINY, "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and len(bad.output.strip().splitlines()) == 1 and "1 test sets but 2 --category values" in bad.output
    assert not (tmp_path / "bad").exists()
