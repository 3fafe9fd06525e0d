"""`--engine ray` on a real two-node Ray cluster started here: the same bytes as `--engine local`.

The cluster is real (`ray start --head` and a second `ray start --address ...`, one CPU
each, free ports, session files under the test's tmp folder, stopped at the end even
on failure). Synthesis over real MVTec AD targets with real DAAD patterns gives the
local engine's files byte for byte, also when a worker process is killed mid-run;
a re-run skips what is complete; leakage hashing on the cluster equals local; a
`daad compare` sweep (one task per run) gives the local metrics.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_cai_e2e are "redefined" as test arguments)
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("ray", reason="Ray is not installed (pip install 'daad[ray]'); the --engine ray tests need it")

from daad.cli import main  # noqa: E402
from test_cai_e2e import hf_cache, published  # noqa: E402, F401  (fixtures: a real published DAAD)
from test_evaluation import tile  # noqa: E402, F401  (fixture: real Magnetic Tile normal images and a test folder)

N_TARGETS = 8
SYNTH = ["--exclude", "mvtec_ad", "--size", "128", "--per-image", "4", "--seed", "5", "--quiet"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray

    from daad.engine.local_cluster import LocalRayCluster

    with LocalRayCluster(tmp_path_factory.mktemp("ray"), nodes=2, cpus=1) as c:
        try:
            yield c
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def targets(shared_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("targets")
    for png in sorted((shared_data / "mvtec_ad" / "bottle" / "test" / "good").glob("*.png"))[:N_TARGETS]:
        shutil.copy(png, folder / png.name)
    return folder


def _synthesize(published, targets: Path, out: Path, *engine: str) -> str:
    res = CliRunner().invoke(main, ["synthesize", "--dataset", str(published["release"]), "--targets", str(targets),
                                    "--out", str(out), *SYNTH, *engine], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_out(published, targets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "cai"
    _synthesize(published, targets, out)
    return out


def _kill_a_worker_once(cluster, ready) -> tuple[threading.Thread, list[int]]:
    """A watcher that SIGKILLs one Ray worker process (an actor running synthesis) as soon as `ready()`."""
    import psutil

    killed: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if ready():
                for p in cluster.processes():
                    try:
                        title = " ".join(p.cmdline())
                    except psutil.Error:
                        continue
                    if title.startswith("ray::_Worker"):
                        p.kill()
                        killed.append(p.pid)
                        return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, killed


def test_synthesis_on_ray_writes_the_local_bytes(cluster, published, targets, local_out, tmp_path):
    out = tmp_path / "ray"
    output = _synthesize(published, targets, out, "--engine", "ray", "--ray-address", cluster.address)
    assert "engine: ray, 2 workers on 2 nodes" in output
    assert f"{N_TARGETS * 4} pseudo anomalies from {N_TARGETS} of {N_TARGETS} targets" in output
    local = _files(local_out)
    assert sorted(local) == sorted(_files(out))  # same names, nothing more (no temp files), nothing less
    assert {"manifest.jsonl", "preview.png", ".daad-run.jsonl"} <= set(local)
    for name, data in _files(out).items():
        assert data == local[name], f"{name} differs"


def test_a_killed_worker_is_retried_and_the_output_is_still_identical(cluster, published, targets, local_out, tmp_path):
    out = tmp_path / "killed"
    watcher, killed = _kill_a_worker_once(cluster, lambda: len(list((out / "abnormal").glob("*.png"))) >= 2)
    _synthesize(published, targets, out, "--engine", "ray", "--ray-address", cluster.address)
    watcher.join(timeout=5)
    assert killed, "no worker was killed: the run ended before the watcher saw its first outputs"
    assert _files(out) == _files(local_out)

    # A re-run skips every complete target (nothing is rewritten); a target with a lost file is done again.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    lost = out / "abnormal" / "003_01.png"
    lost.unlink()
    _synthesize(published, targets, out, "--engine", "ray", "--ray-address", cluster.address)
    rewritten = {p.relative_to(out).as_posix() for p, t in stamps.items() if not p.exists() or p.stat().st_mtime_ns != t}
    # (preview.png keeps its bytes, so it is not rewritten)
    assert rewritten == {"normal/003.png", *(f"{d}/003_{k:02d}.png" for d in ("abnormal", "mask") for k in range(4))}
    assert _files(out) == _files(local_out)


def test_an_input_a_node_cannot_read_is_named_with_the_node(cluster, tmp_path):
    from daad.engine import EngineError, get_engine

    engine = get_engine("ray", address=cluster.address)
    with pytest.raises(EngineError, match=r"^/nowhere/targets: not found on node [0-9.]+ \(\S+, id [0-9a-f]{8}\) \(every node must see"):
        engine.check_paths(readable=[tmp_path, "/nowhere/targets"], writable=[tmp_path / "out"])


def test_hashing_and_leakage_on_ray_equal_local(cluster, shared_data, tmp_path, monkeypatch):
    import numpy as np

    from test_leakage import _web_copy

    from daad.core import taxonomy
    from daad.core.catalog import Catalog
    from daad.core.ingest import Item, ingest
    from daad.core.media_store import MediaStore
    from daad.curate import hashing
    from daad.curate.leakage import mark_leakage
    from daad.engine import get_engine

    ray_engine = get_engine("ray", address=cluster.address)
    paths = sorted(shared_data.glob("magnetic_tile/MT_Crack/Imgs/*.jpg"))[:12] + [tmp_path / "not-an-image.png"]
    (tmp_path / "not-an-image.png").write_bytes(b"nope")
    local_h = hashing.hash_files(paths, variants=True, workers=1, progress=False)
    ray_h = hashing.hash_files(paths, variants=True, chunk=3, progress=False, engine=ray_engine)  # chunks spread over both nodes
    for name in ("phash", "dhash", "ok", "phash_variants", "dhash_variants"):
        assert np.array_equal(getattr(local_h, name), getattr(ray_h, name)), name
    assert ray_h.errors == local_h.errors and len(ray_h.errors) == 1 and "not-an-image.png" in ray_h.errors[0]

    mvtec = tmp_path / "mvtec_anomaly_detection"
    shutil.copytree(shared_data / "mvtec_ad", mvtec)
    base = tmp_path / "home"
    monkeypatch.setenv("DAAD_HOME", str(base))
    catalog = Catalog(base)
    # web-search hits: a re-encoded, downscaled MVTec image (a leak) and Magnetic Tile images (not leaks)
    hits = [mvtec / "bottle" / "test" / "good" / "003.png", *paths[:3]]
    ingest([Item(image=_web_copy(p), name=f"https://example.org/{i}.jpg", source=taxonomy.ONLINE_SEARCH, origin="openverse",
                 license="CC-BY-4.0") for i, p in enumerate(hits)], catalog, MediaStore(base), progress=False)
    catalog.close()
    results = {}
    for name, engine in (("local", None), ("ray", ray_engine)):
        home = tmp_path / f"home_{name}"
        shutil.copytree(base, home)
        catalog = Catalog(home)
        report = mark_leakage("mvtec_ad", mvtec, catalog, MediaStore(home), progress=False, engine=engine)
        results[name] = (report.summary(), [(r.id, r.phash, r.dhash, r.leaks) for r in catalog.find()], catalog.eval_hashes("mvtec_ad"))
        catalog.close()
    assert results["ray"] == results["local"]
    assert "33 evaluation images (hashed now)" in results["ray"][0]
    assert "0 by origin, 1 near-duplicates from other origins; 1 newly marked" in results["ray"][0]


def test_independent_jobs_run_as_tasks_and_gather(cluster, shared_data):
    """The call `daad compare` sweeps use: N jobs, resources per job, results gathered (a job here: hash a few files)."""
    from functools import partial

    from daad.curate import hashing
    from daad.engine import LocalEngine, Resources, get_engine

    files = sorted((shared_data / "mvtec_ad" / "bottle" / "test" / "good").glob("*.png"))
    jobs = [files[i : i + 2] for i in range(0, 8, 2)]
    job = partial(hashing.hash_files, workers=1, progress=False)
    on_ray = dict(get_engine("ray", address=cluster.address).run_jobs(job, jobs, Resources(cpus=1)))
    local = dict(LocalEngine(1).run_jobs(job, jobs))
    assert sorted(on_ray) == list(range(len(jobs)))
    assert all(list(on_ray[i].phash) == list(local[i].phash) for i in range(len(jobs)))


def test_a_job_whose_worker_dies_on_every_retry_is_one_engine_error(cluster):
    """A job that kills its worker each time (os._exit, the job being the exit status) ends as one line, not Ray's report."""
    import os

    from daad.engine import EngineError, Resources, get_engine

    with pytest.raises(EngineError, match=r"^job 3 was lost on Ray after its retries: \w+") as err:
        list(get_engine("ray", address=cluster.address).run_jobs(os._exit, [3], Resources(cpus=1)))
    assert "\n" not in str(err.value)


def test_cdm_generation_on_ray_actors_equals_local(cluster, shared_data, tmp_path):
    """Two CPU actors, each loading the (tiny, random) diffusion pipeline once, write the local run's bytes."""
    pytest.importorskip("diffusers", reason="CDM needs the cdm extra (pip install 'daad[cdm]')")
    from test_cdm import RES, _build_tiny_sd, cai_out  # noqa: F401  (fixture)

    from daad.engine import get_engine
    from daad.synthesis.cdm import TrainConfig, train
    from daad.synthesis.cdm.generate import CDM, CDMSpec, generate_folder

    _build_tiny_sd(tmp_path)
    data = tmp_path / "cai"
    (data / "abnormal").mkdir(parents=True)
    (data / "mask").mkdir()
    rows = []
    for img in sorted((shared_data / "mvtec_ad" / "capsule" / "test" / "crack").glob("*.png"))[:2]:
        shutil.copy(img, data / "abnormal" / img.name)
        shutil.copy(shared_data / "mvtec_ad" / "capsule" / "ground_truth" / "crack" / f"{img.stem}_mask.png", data / "mask" / img.name)
        rows.append(f'{{"file": "abnormal/{img.name}", "anomaly_class": "crack"}}\n')
    (data / "manifest.jsonl").write_text("".join(rows))
    train(TrainConfig(pretrained=str(tmp_path / "sd"), data=str(data), out=str(tmp_path / "cdm"), steps=1, resolution=RES,
                      device="cpu"), progress=False)
    targets = tmp_path / "normal"
    targets.mkdir()
    for name in ("001.png", "002.png"):
        shutil.copy(shared_data / "mvtec_ad" / "bottle" / "test" / "good" / name, targets / name)
    kw: dict[str, Any] = dict(per_image=1, steps=2, seed=7, progress=False)
    local = generate_folder(CDM.load(tmp_path / "cdm", device="cpu"), targets, "crack", tmp_path / "gen_local", **kw)
    spec = CDMSpec(str(tmp_path / "cdm"), device="cpu")
    on_ray = generate_folder(spec, targets, "crack", tmp_path / "gen_ray", engine=get_engine("ray", address=cluster.address), **kw)
    assert local.written == on_ray.written == 2
    assert _files(tmp_path / "gen_ray") == _files(tmp_path / "gen_local")
    # a re-run skips complete targets: nothing is generated or rewritten
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "gen_ray").rglob("*.png")}
    again = generate_folder(spec, targets, "crack", tmp_path / "gen_ray", engine=get_engine("ray", address=cluster.address), **kw)
    assert again.written == 2 and again.kept == 2 and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert _files(tmp_path / "gen_ray") == _files(tmp_path / "gen_local")


# -- daad compare sweeps: one Ray task per (method, test set, seed) -------------------------------

COMPARE = ["--per-image", "2", "--size", "64", "--epochs", "2", "--batch-size", "6", "--lr", "3e-3", "--width", "4",
           "--depth", "3", "--samples", "12", "--last-k", "2", "--seeds", "2", "--seed", "3", "--cpus-per-run", "1", "--quiet"]


def _compare(published, tile, out: Path, methods: str, *engine: str):
    args = ["compare", "--train-normal", str(tile["normal"]), "--test", str(tile["test"]), "--methods", methods,
            "--dataset", str(published["release"]), "--exclude", "mvtec_ad", "--out", str(out), *COMPARE, *engine]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _metrics(out: Path) -> list:
    import json

    res = json.loads((out / "results.json").read_text())
    return [(r["method"], [(run["seed"], run["best"], run["best_epoch"], run["last"]) for run in r["runs"]], r["best"], r["last"])
            for r in res["rows"]]


def test_compare_on_ray_gives_the_local_metrics_and_a_failed_run_is_one_line(cluster, published, tile, tmp_path):
    """2 methods (CAI-N with the real published DAAD, CutPaste) x 1 test set x 2 seeds: same metrics on both engines."""
    local = _compare(published, tile, tmp_path / "local", "cai-n,cutpaste")
    assert local.exit_code == 0, local.output
    on_ray = _compare(published, tile, tmp_path / "ray", "cai-n,cutpaste", "--engine", "ray", "--ray-address", cluster.address)
    assert on_ray.exit_code == 0, on_ray.output
    assert "engine: ray, 2 workers on 2 nodes, 1 CPU and 0 GPU per run" in on_ray.output
    expected = _metrics(tmp_path / "local")
    assert [m for m, *_ in expected] == ["cai-n", "cutpaste"] and all([s for s, *_ in runs] == [3, 4] for _, runs, *_ in expected)
    assert _metrics(tmp_path / "ray") == expected
    for folder in ("cai-n", "cai-n@4", "cutpaste", "cutpaste@4"):  # the synthesis the workers wrote: the local bytes
        assert _files(tmp_path / "ray" / folder) == _files(tmp_path / "local" / folder), folder

    # Again in the Ray run's folder, where one run fails on its worker (a corrupt checkpoint to resume): one line
    # naming it; the other runs resume their complete checkpoints and are gathered with the same numbers.
    out = tmp_path / "ray"
    (out / "eval" / "cutpaste@3" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    failed = _compare(published, tile, out, "cai-n,cutpaste", "--engine", "ray", "--ray-address", cluster.address)
    assert failed.exit_code == 1
    errors = [line for line in failed.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and "Traceback" not in failed.output and "is complete, not synthesised again" in failed.output
    assert errors[0].startswith(f"Error: cutpaste, test {tile['test']}, seed 3: UnpicklingError")
    assert errors[1] == "Error: 1 of 4 runs failed (each named above); the tables hold the others"
    got = _metrics(out)
    assert got[0] == expected[0]  # cai-n: both seeds
    assert [s for s, *_ in got[1][1]] == [4] and got[1][1][0] == expected[1][1][1]  # cutpaste: seed 4 only, same numbers


def test_compare_names_an_input_a_node_cannot_read(cluster, tile, tmp_path):
    from daad.engine import EngineError, get_engine
    from daad.evaluation import CompareConfig, compare, split_methods

    config = CompareConfig(train_normal=str(tile["normal"]), test=str(tile["test"]), out=str(tmp_path / "out"),
                           methods=["draem"], textures="/nowhere/textures", eval={"size": 32, "epochs": 1, "depth": 3})
    with pytest.raises(EngineError, match=r"^/nowhere/textures: not found on node [0-9.]+ \(\S+, id [0-9a-f]{8}\)"):
        compare(config, split_methods("draem"), progress=False, echo=lambda _: None,
                engine=get_engine("ray", address=cluster.address))
    assert not (tmp_path / "out").exists()
