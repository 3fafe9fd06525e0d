"""The one-way rule of daad/architecture.md, checked on the source: every import, including
the ones inside functions, points down the data flow
(core <- collectors <- curate <- release <- synthesis <- evaluation <- cli)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Where each installed package lives in the checkout (pyproject's package-dir mapping).
PACKAGE_DIRS = {"daad": ROOT / "daad", "daad.collectors": ROOT / "collectors",
                "daad.synthesis": ROOT / "synthesis", "daad.cards": ROOT / "cards"}

# Layer of each package prefix; the longest matching prefix wins.
LAYERS = {
    "daad": 0,            # the package root re-exports core names only
    "daad.core": 0,
    "daad.engine": 0,
    "daad.cards": 0,      # data: templates and source cards
    "daad.collectors": 1,
    "daad.curate": 2,
    "daad.release": 3,
    "daad.synthesis": 4,
    "daad.evaluation": 5,
    "daad.demo": 6,
    "daad.cli": 6,
    "daad.__main__": 6,
}


def layer(module: str) -> int | None:
    best = None
    for prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best):
                best = prefix
    return None if best is None else LAYERS[best]


def source_modules():
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = list(rel.parts)
            if package == "daad" and parts[0] in {"collectors", "synthesis", "cards"}:
                continue
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            yield ".".join([package, *parts]), path, is_package


def imported_modules(module: str, path: Path, is_package: bool):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # `from daad import curate` names a module too
                yield f"{target}.{alias.name}", node.lineno


def test_imports_point_down_the_flow():
    upward = []
    for module, path, is_package in source_modules():
        own = layer(module)
        assert own is not None, f"{module}: no layer assigned in tests/test_architecture.py"
        for target, lineno in imported_modules(module, path, is_package):
            if not target.startswith("daad"):
                continue
            theirs = layer(target)
            if theirs is not None and theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{lineno}: {module} imports {target}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_check_sees_function_level_imports(tmp_path):
    """The walker must not be fooled by an import hidden in a function."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from daad.cli import main\n")
    assert ("daad.cli", 2) in list(imported_modules("daad.core.m", f, False))


RESOLVE = ("from daad.synthesis import CAI\n"
           "from daad.synthesis.cai.patterns import config_for, resolve_dataset\n"
           "import sys\n"
           "assert resolve_dataset(sys.argv[1]).endswith('v1.2.0'), resolve_dataset(sys.argv[1])\n"
           "assert config_for('mvtec_ad') == 'exclude_mvtec_ad'")


@pytest.mark.parametrize("statement", ["import daad.synthesis", "from daad.synthesis import CAI", RESOLVE])
def test_synthesis_loads_no_collector_or_publishing_code(statement, tmp_path):
    """Also while finding the newest version of a release folder (v1.2.0 beside v1.0.0) for CAI."""
    for v in ("v1.0.0", "v1.2.0"):
        (tmp_path / v).mkdir()
        (tmp_path / v / "README.md").write_text("---\n---\n")
        (tmp_path / v / "manifest.json").write_text('{"format": 1, "version": "%s", "samples": {}}' % v[1:])
    code = (f"{statement}\nimport sys\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('daad.collectors', 'daad.curate'))"
            " or m in ('daad.release.publish', 'daad.release.dataset_card', 'daad.release.hub_push'))\n"
            "print('\\n'.join(bad))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{statement} loads: {out.stdout}"
