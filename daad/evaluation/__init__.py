"""The paper's evaluation protocol (Sec. 4.1): do pseudo anomalies train a better detector?

    from daad.evaluation import EvalConfig, evaluate
    res = evaluate(EvalConfig(synthetic="cai-bottle", test="mvtec_ad:~/data/mvtec/bottle", out="eval/cai-n"))
    print(res.summary())

Parts: `metrics` (pixel AUROC / AP, PRO, image AUROC), `unet` (DRAEM's discriminative
UNet, focal loss), `data` (training Folder and test sets), `train` (`evaluate`),
`methods` (method names of `compare` and the synthesiser each builds), `compare`,
`plots` (PNGs).
"""

from .compare import CompareConfig, compare
from .methods import parse_method, split_methods
from .train import EvalConfig, EvalResult, evaluate

__all__ = ["EvalConfig", "EvalResult", "evaluate", "CompareConfig", "compare", "parse_method", "split_methods"]
