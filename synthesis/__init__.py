"""What DAAD is for: CAI (training-free injection) and CDM (diffusion), installed as `daad.synthesis`.

`from daad.synthesis import CAI` works; the import is lazy, so `import daad.synthesis`
stays light (OpenCV and SciPy load on first use of CAI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names __getattr__ gives, for type checkers (not imported at run time)
    from daad.synthesis.cai import CAI, Injection, Pattern

__all__ = ["CAI", "Injection", "Pattern"]
_LAZY = dict.fromkeys(__all__, "daad.synthesis.cai")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'daad.synthesis' has no attribute {name!r}")
