"""The face-vid2vid renderer family behind the :class:`~emoface.rendering.base.Renderer` interface.

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

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from emoface.geometry.keypoints import bins_to_degrees, keypoints_from_estimate, transform_keypoints
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    HeadExpressionEstimator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
)
from emoface.networks.face_vid2vid.checkpoint import load_face_vid2vid_networks
from emoface.rendering.base import Renderer, SourceState


class FaceVid2VidRenderer(Renderer):
    """Batched inference of a face-vid2vid renderer (networks of :mod:`emoface.networks.face_vid2vid`).

    Args:
        kp_detector, he_estimator, generator: the networks (put in eval mode).
        batch_size: driving frames per generator call.
        autocast_dtype: e.g. ``torch.bfloat16`` to run under autocast (GPU); ``None``: full precision.
        compile: wrap the generator's per-batch path in ``torch.compile``.
    """

    family: ClassVar[str] = "face_vid2vid"

    def __init__(
        self,
        kp_detector: CanonicalKeypointDetector,
        he_estimator: HeadExpressionEstimator,
        generator: OcclusionAwareGenerator | OcclusionAwareSPADEGenerator,
        batch_size: int = 8,
        autocast_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(batch_size, autocast_dtype)
        self.kp_detector = kp_detector
        self.he_estimator = he_estimator
        self.generator = generator
        self._generator_animate = torch.compile(generator.animate) if compile else generator.animate
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
    def num_kp(self) -> int:
        return int(self.kp_detector.num_kp)

    @property
    def num_bins(self) -> int:
        return int(self.he_estimator.fc_yaw.out_features)

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        bins = (self.num_bins,)
        return {"yaw": bins, "pitch": bins, "roll": bins, "t": (3,), "exp": (3 * self.num_kp,)}

    def degrees(self, logits: Tensor) -> Tensor:
        return bins_to_degrees(logits)

    def estimate(self, images: Tensor) -> dict[str, Tensor]:
        return self.he_estimator(images)

    def canonical_keypoints(self, images: Tensor) -> Tensor:
        return self.kp_detector(images)["value"]

    def keypoints(self, kp_canonical: Tensor, params: dict[str, Tensor], kp_source: Tensor | None = None) -> Tensor:
        return keypoints_from_estimate(kp_canonical, params)

    def encode(self, images: Tensor) -> dict[str, Tensor]:
        return self.generator.encode_source(images)

    def animate(self, encoded: dict[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        return self.generator.animate(encoded, {"value": kp_source}, {"value": kp_driving})["prediction"]

    def _animate(self, encoded: dict[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        return self._generator_animate(encoded, {"value": kp_source}, {"value": kp_driving})["prediction"]

    def driving_keypoints(  # type: ignore[override]
        self, source: SourceState, yaw: Tensor, pitch: Tensor, roll: Tensor, t: Tensor, exp: Tensor
    ) -> Tensor:
        """Posed keypoints ``(N, K, 3)`` of the source's canonical keypoints for N frames' parameters
        (angles ``(N,)`` degrees, ``t (N, 3)``, ``exp (N, 3K)``): ``R kp_canonical + t + exp``."""
        kp_canonical = source.kp_canonical.to(t.device).expand(t.shape[0], -1, -1)
        return transform_keypoints(kp_canonical, yaw, pitch, roll, t, exp)
