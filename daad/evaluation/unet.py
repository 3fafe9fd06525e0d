"""The detector of the protocol: DRAEM's discriminative sub-network (refs [12, 31]), and its focal loss.

Shape (Zavrtanik et al., ICCV 2021, `DiscriminativeSubNetwork` in their released
code, which AnomalyDiffusion [12] reuses for its localisation experiments): an encoder
of `depth + 1` blocks of two 3x3 conv + BatchNorm + ReLU with a 2x2 max-pool between
them, channels w, 2w, 4w, 8w, 8w, 8w (w = `width`); a decoder that upsamples
(bilinear x2, 3x3 conv) and fuses each skip by two 3x3 convs; a 3x3 conv to 2 channels
(normal, anomalous). DRAEM uses w = 64 and depth 5 (6 blocks): our defaults. The input
is the image alone (3 channels): DRAEM feeds image + reconstruction (6), the protocol
trains this network directly on pseudo anomalies, as [12] does. Input sides must be
multiples of 2^depth (256 at depth 5: yes; 32 px still works).

Focal loss (Lin et al. [24]) as in DRAEM's code: softmax over the two channels, gamma 2,
no class weight, the probability of the true class clamped to [1e-5, 1] before the log.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTH = 64
DEFAULT_DEPTH = 5


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                         nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """DRAEM's discriminative UNet: (B, 3, H, W) image -> (B, 2, H, W) logits."""

    def __init__(self, width: int = DEFAULT_WIDTH, depth: int = DEFAULT_DEPTH, in_channels: int = 3):
        super().__init__()
        chans = [width * min(2**i, 8) for i in range(depth + 1)]
        self.depth = depth
        self.encoder = nn.ModuleList(_block(c_in, c_out) for c_in, c_out in zip([in_channels] + chans[:-1], chans))
        self.ups = nn.ModuleList(_up(chans[i + 1], chans[i]) for i in reversed(range(depth)))
        self.fuse = nn.ModuleList(_block(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, fuse in zip(self.ups, self.fuse):
            x = fuse(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean focal loss of (B, 2, H, W) logits against a (B, H, W) {0, 1} target."""
    p = torch.softmax(logits.float(), dim=1)
    pt = p.gather(1, target.long().unsqueeze(1)).squeeze(1).clamp(1e-5, 1.0)
    return (-((1 - pt) ** gamma) * torch.log(pt)).mean()
