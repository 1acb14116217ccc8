"""Renderer inference built for speed: one source image drives many frames, in batches.

The renderer is most of the cost of a talking-face video, and most of the renderer's work for a
video depends on the source image only (its canonical keypoints, its head estimate, its 3D
appearance volume and the dense-motion network's compressed copy of it). :class:`FaceVid2VidRenderer`
computes those once per video (:meth:`~FaceVid2VidRenderer.prepare_source`) and pushes the
driving frames' keypoints through dense motion, warping and decoding ``batch_size`` frames at a
time (:meth:`~FaceVid2VidRenderer.render`): no per-frame Python loop, ``torch.inference_mode``,
optional bf16 autocast and ``torch.compile`` (GPU).

    renderer = FaceVid2VidRenderer.from_checkpoint("00000189-checkpoint.pth.tar")  # SPADE, vox-256 sizes
    source = renderer.prepare_source(image)                   # (1, 3, 256, 256) in [0, 1]
    kp = renderer.driving_keypoints(source, yaw, pitch, roll, t, exp)   # (N, 15, 3)
    frames = renderer.render(source, kp)                      # (N, 3, 256, 256) in [0, 1]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from emoface.geometry.keypoints import bins_to_degrees, keypoints_from_estimate, transform_keypoints
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    HeadExpressionEstimator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
)
from emoface.networks.face_vid2vid.checkpoint import load_face_vid2vid_networks


@dataclass
class SourceState:
    """Everything about a source image the frames of a video share.

    Attributes:
        kp_canonical: ``(1, K, 3)`` canonical keypoints.
        estimate: the head estimator's outputs on the source (bin logits, ``t``, ``exp``).
        kp_source: ``(1, K, 3)`` the source's posed keypoints.
        encoded: the generator's source encoding (``encode_source``).
    """

    kp_canonical: Tensor
    estimate: dict[str, Tensor]
    kp_source: Tensor
    encoded: dict[str, Tensor]


class FaceVid2VidRenderer(nn.Module):
    """Batched inference of a face-vid2vid renderer (networks of :mod:`emoface.networks.face_vid2vid`).

    Args:
        kp_detector, he_estimator, generator: the networks (put in eval mode).
        batch_size: driving frames per generator call.
        autocast_dtype: e.g. ``torch.bfloat16`` to run under autocast (GPU); ``None``: full precision.
        compile: wrap the generator's per-batch path in ``torch.compile``.
    """

    def __init__(
        self,
        kp_detector: CanonicalKeypointDetector,
        he_estimator: HeadExpressionEstimator,
        generator: OcclusionAwareGenerator | OcclusionAwareSPADEGenerator,
        batch_size: int = 8,
        autocast_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.kp_detector = kp_detector
        self.he_estimator = he_estimator
        self.generator = generator
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype
        self._animate = torch.compile(generator.animate) if compile else generator.animate
        self.eval()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike | None = None,
        kp_detector: CanonicalKeypointDetector | None = None,
        he_estimator: HeadExpressionEstimator | None = None,
        generator: OcclusionAwareGenerator | OcclusionAwareSPADEGenerator | None = None,
        kp_detector_params: Mapping[str, Any] | None = None,
        he_estimator_params: Mapping[str, Any] | None = None,
        generator_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> FaceVid2VidRenderer:
        """A renderer from a face-vid2vid file as downloaded, loaded strictly.

        The file may be the public ``00000189-checkpoint.pth.tar``, SadTalker's
        ``facevid2vid_00189-model.pth.tar`` or ``SadTalker_V0.0.2_256.safetensors``, or a
        :meth:`FaceRenderer.export` file; the generator class (plain or SPADE) is the one the file
        holds. Networks not given are built with ``*_params`` (``None``: vox-256 sizes).

        Args:
            path: the checkpoint (``None``: the hub cache's ``00000189-checkpoint.pth.tar``).
            kwargs: :class:`FaceVid2VidRenderer` arguments (``batch_size`` ...).
        """
        nets = load_face_vid2vid_networks(
            path, kp_detector, he_estimator, generator, kp_detector_params=kp_detector_params,
            he_estimator_params=he_estimator_params, generator_params=generator_params,
        )  # fmt: skip
        return cls(nets["kp_detector"], nets["he_estimator"], nets["generator"], **kwargs)  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

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
        image = _as_batch(source_image).to(self.device)
        with self._precision():
            kp_canonical = self.kp_detector(image)["value"].float()
            estimate = {k: v.float() for k, v in self.he_estimator(image).items()}
            encoded = self.generator.encode_source(image)
        return SourceState(kp_canonical, estimate, keypoints_from_estimate(kp_canonical, estimate), encoded)

    @torch.inference_mode()
    def estimate_driving(self, frames: Tensor) -> dict[str, Tensor]:
        """Head estimates of driving frames in batches: ``yaw``, ``pitch``, ``roll`` ``(N,)`` degrees,
        ``t`` ``(N, 3)``, ``exp`` ``(N, 3K)``.

        Args:
            frames: ``(N, 3, H, W)`` in [0, 1] or uint8.
        """
        parts: list[dict[str, Tensor]] = []
        for start in self._chunks(frames.shape[0]):
            chunk = _as_batch(frames[start : start + self.batch_size]).to(self.device)
            with self._precision():
                out = {k: v.float() for k, v in self.he_estimator(chunk).items()}
            parts.append({
                "yaw": bins_to_degrees(out["yaw"]), "pitch": bins_to_degrees(out["pitch"]),
                "roll": bins_to_degrees(out["roll"]), "t": out["t"], "exp": out["exp"],
            })  # fmt: skip
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    @staticmethod
    def driving_keypoints(
        source: SourceState, yaw: Tensor, pitch: Tensor, roll: Tensor, t: Tensor, exp: Tensor
    ) -> Tensor:
        """Posed keypoints ``(N, K, 3)`` of the source's canonical keypoints for N frames' parameters
        (angles ``(N,)`` degrees, ``t (N, 3)``, ``exp (N, 3K)``)."""
        kp_canonical = source.kp_canonical.to(t.device).expand(t.shape[0], -1, -1)
        return transform_keypoints(kp_canonical, yaw, pitch, roll, t, exp)

    @torch.inference_mode()
    def render(self, source: SourceState, kp_driving: Tensor) -> Tensor:
        """Frames for driving keypoints, ``batch_size`` at a time.

        Args:
            source: from :meth:`prepare_source`.
            kp_driving: ``(N, K, 3)``.

        Returns:
            ``(N, 3, H, W)`` float in [0, 1] on the renderer's device.
        """
        frames = []
        kp_source = {"value": source.kp_source}
        for start in self._chunks(kp_driving.shape[0]):
            chunk = kp_driving[start : start + self.batch_size].to(self.device)
            with self._precision():
                out = self._animate(source.encoded, kp_source, {"value": chunk})
            frames.append(out["prediction"].float())
        return torch.cat(frames).clamp_(0, 1)

    @torch.inference_mode()
    def reconstruct(self, source_image: Tensor, driving_frames: Tensor) -> Tensor:
        """Re-enact ``driving_frames (N, 3, H, W)`` with the identity of ``source_image``: the source's
        canonical keypoints posed with each driving frame's estimated pose and expression."""
        source = self.prepare_source(source_image)
        estimate = self.estimate_driving(driving_frames)
        kp = self.driving_keypoints(source, **estimate)
        return self.render(source, kp)


def _as_batch(images: Tensor) -> Tensor:
    """``(3, H, W)`` or ``(N, 3, H, W)``, uint8 or float -> float ``(N, 3, H, W)`` in [0, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
