"""What CDM learns (Eq. 5's e and E_s): one token embedding per anomaly class, and an optional spatial encoder.

How the learned vectors reach the frozen text encoder: new placeholder tokens are added
to the tokenizer and the embedding matrix is resized so they have ids, and a forward
hook on the input-embedding layer replaces the rows looked up for those ids by the
learned vectors (and, with a spatial encoder, the spatial placeholders by the vectors
the encoder computes from the anomaly mask). Why a hook rather than training the
embedding matrix: the text encoder's weights are then never written to, so "only the
new embeddings change" holds by construction, the optimiser state is a few vectors,
and it does not depend on private attributes of a given transformers version.

Spatial encoder (as in AnomalyDiffusion): a small CNN maps the mask to
`spatial_tokens` extra embeddings appended to the prompt, so the token is learned
together with *where* the anomaly is. It is off by default: the class token alone is
portable to any diffusers pipeline (`pipe.load_textual_inversion`), and at generation
the location is enforced by the mask anyway.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def class_token(anomaly_class: str) -> str:
    """The placeholder token of a class, e.g. `<daad-crack>` (cannot collide with a real word)."""
    return f"<daad-{anomaly_class}>"


def spatial_token(index: int) -> str:
    return f"<daad-spatial-{index}>"


class SpatialEncoder(nn.Module):
    """Mask (B,1,H,W) in [0,1] -> (B, n_tokens, dim) text-embedding-space vectors."""

    def __init__(self, n_tokens: int, dim: int, width: int = 32, size: int = 64):
        super().__init__()
        self.n_tokens, self.dim, self.size = n_tokens, dim, size
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(width * 16, n_tokens * dim),
        )

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(mask.float(), size=(self.size, self.size), mode="area").to(next(self.net.parameters()).dtype)
        return self.net(x).view(mask.shape[0], self.n_tokens, self.dim)


class LearnedTokens(nn.Module):
    """The trainable part of CDM, attached to a frozen tokenizer + CLIP text encoder.

    `vectors[i]` is the embedding of `class_token(classes[i])`. Call `attach` once, then
    `encode(prompts, masks)` gives the text encoder's hidden states with the learned
    vectors in place (gradients flow to them and to the spatial encoder only).
    """

    def __init__(self, classes: Sequence[str], dim: int, spatial_tokens: int = 0):
        super().__init__()
        self.classes = list(classes)
        self.vectors = nn.Parameter(torch.zeros(len(self.classes), dim))
        self.spatial = SpatialEncoder(spatial_tokens, dim) if spatial_tokens > 0 else None
        self._hook = None
        self._class_ids: torch.Tensor | None = None
        self._spatial_ids: torch.Tensor | None = None
        self._masks: torch.Tensor | None = None

    @property
    def tokens(self) -> list[str]:
        return [class_token(c) for c in self.classes]

    @property
    def spatial_tokens(self) -> list[str]:
        return [spatial_token(i) for i in range(self.spatial.n_tokens)] if self.spatial is not None else []

    def prompt(self, template: str, anomaly_class: str) -> str:
        """The prompt of one sample: the template with the class token, then the spatial placeholders."""
        text = template.format(token=class_token(anomaly_class))
        return " ".join([text] + self.spatial_tokens)

    def init_from_words(self, tokenizer: Any, text_encoder: Any, words: Sequence[str]) -> None:
        """Start each class vector at the mean embedding of the class name's sub-tokens.

        Why: textual inversion converges faster and more reliably from a related word
        ("crack") than from zeros or noise (Gal et al.).
        """
        table = text_encoder.get_input_embeddings().weight.detach().float().cpu()
        with torch.no_grad():
            for i, word in enumerate(words):
                ids = tokenizer(word, add_special_tokens=False).input_ids
                ids = [j for j in ids if j < table.shape[0]] or [tokenizer.eos_token_id]
                self.vectors[i] = table[ids].mean(0).to(self.vectors.device)

    def attach(self, tokenizer: Any, text_encoder: Any) -> None:
        """Add the placeholder tokens, give them rows, and hook the embedding layer.

        The new rows are filled with the learned vectors (so a plain forward without the
        hook, e.g. a diffusers pipeline, sees them too); all existing rows are untouched.
        """
        new = [t for t in self.tokens + self.spatial_tokens if t not in tokenizer.get_vocab()]
        if new:
            tokenizer.add_tokens(new)
        embedding = text_encoder.get_input_embeddings()
        if len(tokenizer) > embedding.weight.shape[0]:
            text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # rows are overwritten below
            embedding = text_encoder.get_input_embeddings()
        device = embedding.weight.device
        self._class_ids = torch.tensor(tokenizer.convert_tokens_to_ids(self.tokens), device=device)
        self._spatial_ids = torch.tensor(tokenizer.convert_tokens_to_ids(self.spatial_tokens), device=device, dtype=torch.long)
        self.write_rows(text_encoder)
        if self._hook is not None:
            self._hook.remove()
        self._hook = embedding.register_forward_hook(self._replace)

    def write_rows(self, text_encoder: Any) -> None:
        """Copy the current class vectors into their embedding rows (rows of old tokens are not touched)."""
        weight = text_encoder.get_input_embeddings().weight
        with torch.no_grad():
            weight[self._class_ids] = self.vectors.detach().to(weight.device, weight.dtype)

    def detach_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _replace(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        assert self._class_ids is not None and self._spatial_ids is not None, "the hook is registered by attach()"
        ids = inputs[0]
        out = output.clone()
        for k in range(len(self.classes)):
            hit = ids == self._class_ids[k]
            if hit.any():
                out[hit] = self.vectors[k].to(out.dtype)
        if self.spatial is not None and self._masks is not None and len(self._spatial_ids):
            vecs = self.spatial(self._masks.to(self.vectors.device)).to(out.dtype)  # (B, n, dim)
            for j, sid in enumerate(self._spatial_ids.tolist()):
                rows, cols = torch.nonzero(ids == sid, as_tuple=True)
                out[rows, cols] = vecs[rows, j]
        return out

    def encode(self, tokenizer: Any, text_encoder: Any, prompts: Sequence[str], masks: torch.Tensor | None = None) -> torch.Tensor:
        """Text-encoder hidden states (B, L, dim) of `prompts`, with learned vectors and spatial tokens."""
        ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
        self._masks = masks
        try:
            return text_encoder(ids.to(text_encoder.device))[0]
        finally:
            self._masks = None
