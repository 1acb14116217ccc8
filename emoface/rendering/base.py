"""The interface every frozen renderer family implements (:class:`Renderer`).

A renderer draws frames of a source image posed by driving keypoints. Most of the work for a
video depends on the source only, so inference splits in two: :meth:`Renderer.prepare_source`
(once per video) and :meth:`Renderer.render` (driving keypoints, ``batch_size`` frames per call,
``torch.inference_mode``, optional autocast). Between them, the family's motion parameters (per
frame, shapes in :attr:`Renderer.parameter_shapes`) become keypoints with
:meth:`Renderer.driving_keypoints`; :meth:`Renderer.estimate_driving` reads them from real frames.

Training a keypoint driver against the frozen renderer (stage 2) uses the differentiable
counterparts: :meth:`Renderer.estimate` (raw parameters of images: bin logits, ``t``, ``exp``,
and ``scale`` where the family has one), :meth:`Renderer.canonical_keypoints`,
:meth:`Renderer.keypoints` (raw parameters -> posed keypoints), :meth:`Renderer.encode` and
:meth:`Renderer.animate`.
"""

from __future__ import annotations

import contextlib
from abc import ABCMeta, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn


@dataclass
class SourceState:
    """Everything about a source image the frames of a video share.

    Attributes:
        kp_canonical: ``(B, K, 3)`` canonical keypoints.
        estimate: the family's raw parameters of the source (:meth:`Renderer.estimate`).
        kp_source: ``(B, K, 3)`` the source's posed keypoints.
        encoded: the family's source encoding (:meth:`Renderer.encode`).
    """

    kp_canonical: Tensor
    estimate: dict[str, Tensor]
    kp_source: Tensor
    encoded: dict[str, Tensor]


class Renderer(nn.Module, metaclass=ABCMeta):
    """A frozen keypoint-driven renderer (see the module docstring).

    Args:
        batch_size: driving frames per call in the batched inference path.
        autocast_dtype: e.g. ``torch.bfloat16`` to run under autocast (GPU); ``None``: full precision.

    Attributes:
        family: ``"face_vid2vid"`` or ``"live_portrait"``.
        angles: the raw parameters' angle names (bin logits).
    """

    family: ClassVar[str]
    angles: ClassVar[tuple[str, ...]] = ("yaw", "pitch", "roll")

    def __init__(self, batch_size: int = 8, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype

    # -- what the family is ------------------------------------------------------------------
    @property
    @abstractmethod
    def num_kp(self) -> int:
        """Keypoints K."""
        raise NotImplementedError

    @property
    @abstractmethod
    def num_bins(self) -> int:
        """Bins per head-pose angle."""
        raise NotImplementedError

    @property
    def has_scale(self) -> bool:
        """Whether the motion has a scale term."""
        return "scale" in self.parameter_shapes

    @property
    @abstractmethod
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-frame shapes of the raw parameters (:meth:`estimate`): angle bin logits
        ``(num_bins,)``, ``t`` ``(3,)``, ``exp`` ``(3K,)``, and ``scale`` ``(1,)`` where the family has one."""
        raise NotImplementedError

    @abstractmethod
    def degrees(self, logits: Tensor) -> Tensor:
        """Angles ``(...)`` in degrees from bin logits ``(..., num_bins)`` (the family's convention)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- differentiable pieces (training a driver) -------------------------------------------
    @abstractmethod
    def estimate(self, images: Tensor) -> dict[str, Tensor]:
        """Raw parameters of images ``(N, 3, H, W)`` in [0, 1] (shapes: :attr:`parameter_shapes`)."""
        raise NotImplementedError

    @abstractmethod
    def canonical_keypoints(self, images: Tensor) -> Tensor:
        """``(N, K, 3)`` canonical keypoints of images ``(N, 3, H, W)``."""
        raise NotImplementedError

    @abstractmethod
    def keypoints(self, kp_canonical: Tensor, params: dict[str, Tensor], kp_source: Tensor | None = None) -> Tensor:
        """Posed keypoints ``(N, K, 3)`` from canonical ones and raw parameters (bin logits).

        Args:
            kp_canonical: ``(N, K, 3)``.
            params: raw parameters, batch N.
            kp_source: ``(N, K, 3)`` the source's posed keypoints, for families that correct the
                driving keypoints against them (LivePortrait's stitching); ``None``: no correction.
        """
        raise NotImplementedError

    @abstractmethod
    def encode(self, images: Tensor) -> dict[str, Tensor]:
        """The source encoding of images ``(N, 3, H, W)`` (what every frame of a source shares)."""
        raise NotImplementedError

    @abstractmethod
    def animate(self, encoded: dict[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """Frames ``(N, 3, H', W')`` in [0, 1] of encoded sources (batch 1 or N) posed by ``kp_driving (N, K, 3)``."""
        raise NotImplementedError

    # -- batched inference ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            yield

    def _chunks(self, count: int) -> range:
        return range(0, count, self.batch_size)

    @torch.inference_mode()
    def prepare_source(self, source_image: Tensor) -> SourceState:
        """Encode the source once per video.

        Args:
            source_image: ``(1, 3, H, W)`` (or ``(3, H, W)``) in [0, 1], or uint8.
        """
        image = as_batch(source_image).to(self.device)
        with self._precision():
            kp_canonical = self.canonical_keypoints(image).float()
            estimate = {k: v.float() for k, v in self.estimate(image).items()}
            encoded = self.encode(image)
        return SourceState(kp_canonical, estimate, self.keypoints(kp_canonical, estimate), encoded)

    @torch.inference_mode()
    def estimate_driving(self, frames: Tensor) -> dict[str, Tensor]:
        """Motion parameters of driving frames ``(N, 3, H, W)`` in batches, in the form
        :meth:`driving_keypoints` takes (angles ``(N,)`` in degrees)."""
        parts: list[dict[str, Tensor]] = []
        for start in self._chunks(frames.shape[0]):
            chunk = as_batch(frames[start : start + self.batch_size]).to(self.device)
            with self._precision():
                raw = {k: v.float() for k, v in self.estimate(chunk).items()}
            parts.append({k: self.degrees(v) if k in self.angles else v for k, v in raw.items()})
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    @abstractmethod
    def driving_keypoints(self, source: SourceState, **params: Tensor) -> Tensor:
        """Posed keypoints ``(N, K, 3)`` of the source's canonical keypoints for N frames' motion
        parameters (angles ``(N,)`` in degrees, the others as :attr:`parameter_shapes`)."""
        raise NotImplementedError

    @torch.inference_mode()
    def render(self, source: SourceState, kp_driving: Tensor) -> Tensor:
        """Frames for driving keypoints, ``batch_size`` at a time.

        Args:
            source: from :meth:`prepare_source`.
            kp_driving: ``(N, K, 3)``.

        Returns:
            ``(N, 3, H', W')`` float in [0, 1] on the renderer's device (the family's output size).
        """
        frames = []
        for start in self._chunks(kp_driving.shape[0]):
            chunk = kp_driving[start : start + self.batch_size].to(self.device)
            with self._precision():
                frames.append(self._animate(source.encoded, source.kp_source, chunk).float())
        return torch.cat(frames).clamp_(0, 1)

    def _animate(self, encoded: dict[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """:meth:`animate`, possibly compiled."""
        return self.animate(encoded, kp_source, kp_driving)

    @torch.inference_mode()
    def reconstruct(self, source_image: Tensor, driving_frames: Tensor) -> Tensor:
        """Re-enact ``driving_frames (N, 3, H, W)`` with the identity of ``source_image``: the source's
        canonical keypoints posed with each driving frame's estimated motion."""
        source = self.prepare_source(source_image)
        return self.render(source, self.driving_keypoints(source, **self.estimate_driving(driving_frames)))


def as_batch(images: Tensor) -> Tensor:
    """``(3, H, W)`` or ``(N, 3, H, W)``, uint8 or float -> float ``(N, 3, H, W)`` in [0, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
