"""CDM: CAI-guided diffusion mechanism (paper Sec. 3.3, Eq. 5), on diffusers.

Learn one textual-inversion token per anomaly class from CAI's pseudo anomalies with a
mask-weighted loss, then generate new anomalies of a chosen class inside a mask of a
normal image. One module per role:

    model.py              load the frozen Stable-Diffusion-style base model, offline
    cai_folder.py         read the training data (a `daad synthesize` output folder)
    textual_inversion.py  what is learned: class tokens (+ optional spatial encoder)
    train.py              Eq. 5 training loop, checkpoints, resume
    cdm_folder.py         the trained CDM folder (diffusers-format embeddings, config, masks)
    generate.py           blended latent diffusion inside a mask; CAI's output layout

Importing this package imports torch; the CLI imports it only inside `daad cdm ...`.
"""

from daad.synthesis.cdm.generate import CDM, Generated, generate_folder
from daad.synthesis.cdm.model import ModelNotFoundError, load_components
from daad.synthesis.cdm.textual_inversion import LearnedTokens, class_token
from daad.synthesis.cdm.train import TrainConfig, TrainResult, train

__all__ = [
    "CDM",
    "Generated",
    "generate_folder",
    "ModelNotFoundError",
    "load_components",
    "LearnedTokens",
    "class_token",
    "TrainConfig",
    "TrainResult",
    "train",
]
