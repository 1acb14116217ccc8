"""VGG19 features for the renderer's multi-scale perceptual loss (face-vid2vid / FOMM style).

The backbone is torchvision's VGG19 ``features`` up to ``relu5_1``, split into the five slices
the public face-vid2vid code compares (relu1_1, relu2_1, relu3_1, relu4_1, relu5_1). Its ImageNet
weights are torchvision's file ``vgg19-dcbb9e9d.pth``, resolved like every other weight file of
the project (:func:`emoface.io.weights.resolve_weights`: an explicit path or the torch hub cache;
never downloaded); a missing file raises :class:`emoface.io.weights.MissingWeightsError`.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn

from emoface.io.weights import WeightsInfo, extract_state_dict, load_weights, register_weights

register_weights(
    "vgg19",
    WeightsInfo(
        "vgg19-dcbb9e9d.pth",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth (torchvision VGG19, ImageNet)",
        "VGG19 backbone of the renderer's perceptual loss",
    ),
)

# Layer indices of torchvision's vgg19().features closing each slice (relu1_1 ... relu5_1).
_SLICE_ENDS = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 feature slices.

    Args:
        weights: ``"imagenet"`` (torchvision's file through the weight registry), a path to that
            file (or a folder holding it), or ``None`` for random weights (an untrained network
            still gives a multi-scale structural loss; for CPU runs without the weight file).

    ``forward(images (B, 3, H, W) in [0, 1])`` returns the five slices' outputs, ImageNet-normalised
    input.
    """

    def __init__(self, weights: str | os.PathLike | None = "imagenet") -> None:
        super().__init__()
        from torchvision.models import vgg19

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            features = vgg19(weights=None).features[: _SLICE_ENDS[-1]]
        if weights is not None:
            path = None if weights == "imagenet" else weights
            state = extract_state_dict(load_weights("vgg19", path))
            own = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
            own = {k: v for k, v in own.items() if int(k.split(".")[0]) < _SLICE_ENDS[-1]}
            features.load_state_dict(own, strict=True)
        starts = (0, *_SLICE_ENDS[:-1])
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, _SLICE_ENDS))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always in eval mode (a frozen loss network)."""
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        out = (images - self.mean) / self.std
        features = []
        for block in self.slices:
            out = block(out)
            features.append(out)
        return features
