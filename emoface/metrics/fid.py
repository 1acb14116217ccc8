"""Frechet Inception Distance with pytorch-fid's InceptionV3 (TF FID port, 2048-d pool features)."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from emoface.io.weights import WeightsInfo, load_weights, register_weights
from emoface.metrics import functional as MF
from emoface.metrics.base import FrozenEvaluatorMixin, GaussianFeatureStates

FID_DIMS = 2048


def build_fid_inception(weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` with weights from a local file, never downloaded.

    The file is ``pt_inception-2015-12-05-6726825d.pth`` (``pytorch_fid.inception.FID_WEIGHTS_URL``)
    in the torch hub cache unless ``weights`` names another path; a missing file raises
    :class:`emoface.io.weights.MissingWeightsError`. The state dict is read with
    ``weights_only=True`` and handed to pytorch-fid's own constructor in place of its download.
    """
    from pytorch_fid import inception

    state = load_weights("fid_inception", weights)
    with mock.patch.object(inception, "load_state_dict_from_url", return_value=state):
        model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]])
    return model.eval().requires_grad_(False)


class FID(FrozenEvaluatorMixin, GaussianFeatureStates, Metric):
    """FID between generated and real frames (every frame of every video is one sample).

    ``update(videos, real)`` with videos ``(B, T, 3, H, W)`` uint8 or [0, 1] RGB; frames are
    resized to 299 and scaled to [-1, 1] inside pytorch-fid's InceptionV3 exactly as its
    folder-based ``fid_score`` does. States are feature sums and outer-product sums
    (``dist_reduce_fx="sum"``, float64), so the statistics are exact on any number of ranks and
    memory does not grow with the dataset. ``compute()`` applies pytorch-fid's
    ``calculate_frechet_distance``.

    Real-set statistics can be computed once and reused: :meth:`save_real_statistics` writes a
    pytorch-fid ``.npz`` (``mu``, ``sigma``), and ``FID(real_statistics=path)`` loads one (also
    pytorch-fid's own ``--save-stats`` files).

    Args:
        weights: Inception weight file; ``None``: the torch hub cache file.
        real_statistics: ``.npz`` with ``mu`` and ``sigma`` of the real set.
        reset_real_features: whether ``reset()`` also clears accumulated real features.
        frame_chunk: frames per forward pass.
        inception: an already built feature network (shared between metrics / tests).
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False
    _evaluators = ("inception",)

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        real_statistics: str | os.PathLike | None = None,
        reset_real_features: bool = True,
        frame_chunk: int = 64,
        inception: torch.nn.Module | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.inception = inception if inception is not None else build_fid_inception(weights)
        self._freeze_evaluators()
        self.frame_chunk = frame_chunk
        self.reset_real_features = reset_real_features
        self._add_gaussian_states(FID_DIMS)
        self._real_stats: tuple[np.ndarray, np.ndarray] | None = None
        if real_statistics is not None:
            with np.load(Path(real_statistics)) as data:
                self._real_stats = (np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64))

    @torch.no_grad()
    def update(self, videos: Tensor, real: bool) -> None:
        """Add the frames of ``(B, T, 3, H, W)`` videos to the real or the generated set."""
        frames = MF.as_videos(videos).flatten(0, 1)
        self._add_features("real" if real else "fake", MF.inception_features(self.inception, frames, self.frame_chunk))

    def _statistics(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        return self._gaussian(kind, "frames")

    def real_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu (2048,), sigma (2048, 2048))`` of the real set (loaded or accumulated)."""
        return self._real_stats if self._real_stats is not None else self._statistics("real")

    def fake_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` of the generated set."""
        return self._statistics("fake")

    def save_real_statistics(self, path: str | os.PathLike) -> None:
        """Write the real-set statistics as a pytorch-fid ``.npz`` (``mu``, ``sigma``)."""
        mu, sigma = self.real_statistics()
        np.savez(Path(path), mu=mu, sigma=sigma)

    def compute(self) -> Tensor:
        """FID (float64 scalar)."""
        mu_r, sigma_r = self.real_statistics()
        mu_f, sigma_f = self.fake_statistics()
        return torch.tensor(MF.frechet_distance(mu_f, sigma_f, mu_r, sigma_r), dtype=torch.float64)

    def reset(self) -> None:
        """Clear the states (the real ones too unless ``reset_real_features=False``)."""
        if self.reset_real_features:
            super().reset()
            return
        kept = {k: getattr(self, k).clone() for k in ("real_sum", "real_outer", "real_count")}
        super().reset()
        for key, value in kept.items():
            setattr(self, key, value)


TORCHVISION_INCEPTION_KEY = "fid_inception_torchvision"
register_weights(
    TORCHVISION_INCEPTION_KEY,
    WeightsInfo(
        "inception_v3_google-0cc3c7bd.pth",
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth "
        "(torchvision Inception_V3_Weights.IMAGENET1K_V1)",
        "torchvision's ImageNet InceptionV3 for FID as EAT's evaluation computes it",
    ),
)


class TorchvisionInceptionFeatures(torch.nn.Module):
    """torchvision's ImageNet InceptionV3 as an FID feature network (EAT's evaluation's choice).

    Input ``(N, 3, H, W)`` RGB in [0, 1]; frames are resized to 299 (bilinear), normalised with
    ImageNet's mean and std, and the 2048-d average-pool features (the input of ``fc``) returned as
    ``[(N, 2048, 1, 1)]``, the layout of pytorch-fid's network, so
    :func:`emoface.metrics.functional.inception_features` serves both. Its FID is not comparable
    to pytorch-fid's (other weights, other preprocessing).
    """

    def __init__(self, state_dict: dict[str, Tensor] | None = None) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        net.fc = torch.nn.Identity()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = torch.nn.functional.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        net = self.net
        was_training = net.training
        net.eval()  # (eval: no auxiliary output)
        features = net((x - self.mean) / self.std)
        net.train(was_training)
        return [features[:, :, None, None]]


def build_torchvision_inception(weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """:class:`TorchvisionInceptionFeatures` with ``inception_v3_google-0cc3c7bd.pth`` from the torch hub
    cache (or ``weights``), read with ``weights_only=True``, never downloaded; a missing file raises
    :class:`emoface.io.weights.MissingWeightsError`."""
    state = load_weights(TORCHVISION_INCEPTION_KEY, weights)
    return TorchvisionInceptionFeatures(state).eval().requires_grad_(False)
