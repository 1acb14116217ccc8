"""Frame-quality metrics on videos: PSNR, SSIM (scikit-image definitions) and LPIPS (lpips package)."""

from __future__ import annotations

import os
import re
import warnings

import torch
from torch import Tensor

from emoface.io.weights import load_weights
from emoface.metrics import functional as MF
from emoface.metrics.base import FrozenEvaluatorMixin, VideoMeanMetric


class PSNR(VideoMeanMetric):
    """Peak signal-to-noise ratio (dB), scikit-image's ``peak_signal_noise_ratio`` per frame.

    ``update(preds, target)`` with videos ``(B, T, 3, H, W)``, uint8 or float in [0, 1];
    ``compute()`` = mean over videos of each video's mean over frames.

    Args:
        data_range: value range; ``None``: 255 for uint8 inputs, 1.0 for floats.
    """

    higher_is_better = True

    def __init__(self, data_range: float | None = None, **kwargs: object) -> None:
        super().__init__(["value"], **kwargs)
        self.data_range = data_range

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of ``(B, T, 3, H, W)`` videos."""
        self._accumulate({"value": MF.psnr(preds, target, self.data_range)})

    def compute(self) -> Tensor:
        """Mean PSNR over videos (float64 scalar)."""
        return self._means()["value"]


class SSIM(VideoMeanMetric):
    """Structural similarity, scikit-image's ``structural_similarity`` per frame.

    Settings: ``channel_axis=-1``, 7 x 7 uniform window, sample covariance, K1 = 0.01,
    K2 = 0.03 (scikit-image's defaults); averaged like :class:`PSNR`.

    Args:
        data_range: value range; ``None``: 255 for uint8 inputs, 1.0 for floats.
        win_size: uniform window side.
    """

    higher_is_better = True

    def __init__(self, data_range: float | None = None, win_size: int = 7, **kwargs: object) -> None:
        super().__init__(["value"], **kwargs)
        self.data_range = data_range
        self.win_size = win_size

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of ``(B, T, 3, H, W)`` videos."""
        self._accumulate({"value": MF.ssim(preds, target, self.data_range, self.win_size)})

    def compute(self) -> Tensor:
        """Mean SSIM over videos (float64 scalar)."""
        return self._means()["value"]


def build_lpips(
    net: str = "alex", backbone_weights: str | os.PathLike | None = None, random_backbone: bool = False
) -> torch.nn.Module:
    """An ``lpips.LPIPS`` model that never downloads.

    The linear heads (v0.1) ship inside the lpips package. The backbone's torchvision weights are
    read from ``backbone_weights`` or the hub cache file (``alexnet-owt-7be5be79.pth`` /
    ``vgg16-397923af.pth``) through :func:`emoface.io.weights.load_weights`; a missing file
    raises :class:`emoface.io.weights.MissingWeightsError`.

    Args:
        net: ``"alex"`` (default, the usual LPIPS) or ``"vgg"``.
        backbone_weights: torchvision weight file or folder; ``None``: the torch hub cache.
        random_backbone: keep a randomly initialised backbone (plumbing tests only).
    """
    import lpips

    if net not in ("alex", "vgg"):
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    state = None if random_backbone else load_weights(f"lpips_{net}", backbone_weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecated `pretrained` argument
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        # lpips keeps torchvision's `features[i]` as `slice<k>.<i>`; map the file's keys onto them.
        mapped = {}
        for name in model.net.state_dict():
            match = re.fullmatch(r"slice\d+\.(\d+)\.(.+)", name)
            if match is None:
                raise RuntimeError(f"unexpected lpips backbone parameter {name}")
            mapped[name] = state[f"features.{match.group(1)}.{match.group(2)}"]
        model.net.load_state_dict(mapped, strict=True)
    return model.eval().requires_grad_(False)


class LPIPS(FrozenEvaluatorMixin, VideoMeanMetric):
    """Learned perceptual image patch similarity (lpips package, v0.1 linear heads).

    Frames are scaled to [-1, 1] (lpips' expected range) from uint8 or [0, 1] inputs; averaged
    like :class:`PSNR`. Lower is better.

    Args:
        net: ``"alex"`` (default) or ``"vgg"``.
        backbone_weights: torchvision backbone weight file; ``None``: the torch hub cache file.
        random_backbone: random backbone (tests only; the numbers mean nothing).
        frame_chunk: frames per forward pass.
    """

    higher_is_better = False
    _evaluators = ("model",)

    def __init__(
        self,
        net: str = "alex",
        backbone_weights: str | os.PathLike | None = None,
        random_backbone: bool = False,
        frame_chunk: int = 64,
        **kwargs: object,
    ) -> None:
        super().__init__(["value"], **kwargs)
        self.model = build_lpips(net, backbone_weights, random_backbone)
        self.frame_chunk = frame_chunk

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of ``(B, T, 3, H, W)`` videos."""
        self._accumulate({"value": MF.lpips_per_frame(self.model, preds, target, self.frame_chunk).mean(1)})

    def compute(self) -> Tensor:
        """Mean LPIPS over videos (float64 scalar)."""
        return self._means()["value"]
