"""The engine interface without a cluster: the local engine, the journal, and `--engine ray` without Ray installed."""

from __future__ import annotations

import sys
from functools import partial

import pytest
from click.testing import CliRunner

from daad.cli import main
from daad.engine import EngineError, LocalEngine, get_engine
from daad.engine.journal import Journal


def _where(state: int, item: int) -> tuple[int, int, int]:
    import os

    return item * item, state, os.getpid()


def test_local_engine_runs_every_item_once_with_state_built_once_per_worker(tmp_path):
    import os

    items = list(range(9))
    here = dict(LocalEngine(1).imap(_where, items, setup=os.getpid))
    assert here == {i: (i * i, os.getpid(), os.getpid()) for i in items}
    spawned = dict(LocalEngine(2).imap(_where, items, setup=os.getpid))
    assert sorted(spawned) == items and all(sq == i * i for i, (sq, _, _) in spawned.items())
    assert all(state == pid != os.getpid() for _, state, pid in spawned.values())  # setup ran in the worker that used it
    assert dict(LocalEngine(2).run_jobs(partial(pow, 2), [1, 5, 10])) == {0: 2, 1: 32, 2: 1024}
    with pytest.raises(EngineError, match=r"^/nowhere/in: not found on this machine"):
        LocalEngine(1).check_paths(readable=[tmp_path, "/nowhere/in"], writable=[tmp_path / "out"])


def test_journal_keeps_results_of_the_same_settings_only(tmp_path):
    path = tmp_path / "out" / ".daad-run.jsonl"
    first = Journal(path, "settings-a")
    assert first.load() == {}
    first.start({})
    first.record("b.png", [{"file": "abnormal/b_00.png"}])
    first.record("a.png", [{"file": "abnormal/a_00.png"}])
    first.close()
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "c.png", "res')  # the driver was killed mid-line
    assert Journal(path, "settings-a").load() == {"b.png": [{"file": "abnormal/b_00.png"}], "a.png": [{"file": "abnormal/a_00.png"}]}
    assert Journal(path, "settings-b").load() == {}  # other seed or pool: nothing is reused
    again = Journal(path, "settings-a")
    again.start(again.load())
    again.finish([("a.png", [1]), ("b.png", [2])])
    assert path.read_text().splitlines()[1:] == ['{"key": "a.png", "result": [1]}', '{"key": "b.png", "result": [2]}']


def test_engine_ray_without_ray_installed_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as on a machine without it
    with pytest.raises(EngineError, match=r"^--engine ray needs Ray, which is not installed: pip install 'daad\[ray\]'$"):
        get_engine("ray")
    res = CliRunner().invoke(main, ["leakage", "mvtec_ad", str(tmp_path), "--engine", "ray"])
    assert res.exit_code == 1 and res.output == "Error: --engine ray needs Ray, which is not installed: pip install 'daad[ray]'\n"
