"""The LivePortrait renderer family behind the :class:`~emoface.rendering.base.Renderer` interface.

Per video, the source's appearance volume (F), its motion (M: canonical keypoints, pose,
expression, scale, translation) and the dense motion network's compressed copy of the volume are
computed once; driving keypoints then go through warping (W) and the SPADE decoder (G)
``batch_size`` frames at a time. Driving keypoints follow LivePortrait's conventions
(:mod:`emoface.networks.live_portrait.keypoints`) and are corrected by the stitching network when
its file is present. Images go in at 256 px (resized when ``input_size`` is set and they differ)
and come out at twice that (512 px).

    renderer = LivePortraitRenderer.from_folder("pretrained_weights")   # the downloaded weights
    source = renderer.prepare_source(image)                           # (1, 3, 256, 256) in [0, 1]
    kp = renderer.driving_keypoints(source, **renderer.estimate_driving(frames))  # (N, 21, 3)
    frames = renderer.render(source, kp)                              # (N, 3, 512, 512) in [0, 1]
"""

from __future__ import annotations

import os
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from emoface.networks.live_portrait import (
    AppearanceFeatureExtractor,
    LivePortraitNetworks,
    MotionExtractor,
    SPADEDecoder,
    StitchingRetargeting,
    WarpingNetwork,
    headpose_degrees,
    keypoints_from_motion,
    load_live_portrait,
)
from emoface.networks.live_portrait.checkpoint import read_config
from emoface.rendering.base import Renderer, SourceState

NATIVE_INPUT_SIZE = 256
"""The public networks' input side (their output is twice it)."""


class LivePortraitRenderer(Renderer):
    """Batched inference (and differentiable pieces) of LivePortrait's frozen networks.

    Args:
        appearance_feature_extractor, motion_extractor, warping_module, spade_generator: F, M, W, G.
        stitching_retargeting_module: S (``None``: no stitching).
        batch_size: driving frames per warping / decoding call.
        autocast_dtype: e.g. ``torch.bfloat16`` (GPU); ``None``: full precision.
        compile: wrap warping + decoding in ``torch.compile``.
        input_size: resize input images to this side when they differ (``None``: as given).
    """

    family: ClassVar[str] = "live_portrait"
    angles: ClassVar[tuple[str, ...]] = ("pitch", "yaw", "roll")

    def __init__(
        self,
        appearance_feature_extractor: AppearanceFeatureExtractor,
        motion_extractor: MotionExtractor,
        warping_module: WarpingNetwork,
        spade_generator: SPADEDecoder,
        stitching_retargeting_module: StitchingRetargeting | None = None,
        batch_size: int = 8,
        autocast_dtype: torch.dtype | None = None,
        compile: bool = False,
        input_size: int | None = NATIVE_INPUT_SIZE,
    ) -> None:
        super().__init__(batch_size, autocast_dtype)
        self.appearance_feature_extractor = appearance_feature_extractor
        self.motion_extractor = motion_extractor
        self.warping_module = warping_module
        self.spade_generator = spade_generator
        self.stitching_retargeting_module = stitching_retargeting_module
        self.input_size = input_size
        self._compiled = torch.compile(self.animate) if compile else None
        self.eval()

    @classmethod
    def from_networks(cls, networks: LivePortraitNetworks, **kwargs: object) -> LivePortraitRenderer:
        """A renderer of :class:`LivePortraitNetworks` (``kwargs``: the constructor's options)."""
        return cls(
            networks.appearance_feature_extractor, networks.motion_extractor, networks.warping_module,
            networks.spade_generator, networks.stitching_retargeting_module, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    @classmethod
    def from_folder(cls, folder: str | os.PathLike | None = None, **kwargs: object) -> LivePortraitRenderer:
        """The public files of ``folder`` loaded strictly (:func:`load_live_portrait`; sizes from its
        ``models.json`` when present, which also leaves ``input_size`` unset: such networks are not
        the public 256 px ones); ``kwargs``: the constructor's options."""
        if folder is not None and read_config(folder):
            kwargs.setdefault("input_size", None)
        return cls.from_networks(load_live_portrait(folder), **kwargs)

    # -- what the family is ------------------------------------------------------------------
    @property
    def num_kp(self) -> int:
        return int(self.motion_extractor.num_kp)

    @property
    def num_bins(self) -> int:
        return int(self.motion_extractor.detector.fc_yaw.out_features)

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        bins = (self.num_bins,)
        return {"pitch": bins, "yaw": bins, "roll": bins, "t": (3,), "exp": (3 * self.num_kp,), "scale": (1,)}

    def degrees(self, logits: Tensor) -> Tensor:
        return headpose_degrees(logits)

    # -- differentiable pieces -----------------------------------------------------------------
    def _input(self, images: Tensor) -> Tensor:
        size = self.input_size
        if size is None or images.shape[-2:] == (size, size):
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def estimate(self, images: Tensor) -> dict[str, Tensor]:
        raw = self.motion_extractor(self._input(images))
        return {name: raw[name] for name in (*self.angles, "t", "exp", "scale")}

    def canonical_keypoints(self, images: Tensor) -> Tensor:
        kp = self.motion_extractor(self._input(images))["kp"]
        return kp.view(kp.shape[0], self.num_kp, 3)

    def keypoints(self, kp_canonical: Tensor, params: dict[str, Tensor], kp_source: Tensor | None = None) -> Tensor:
        motion = {**params, **{name: self.degrees(params[name]) for name in self.angles}}
        kp = keypoints_from_motion(kp_canonical, motion)
        if kp_source is not None and self.stitching_retargeting_module is not None:
            kp = self.stitching_retargeting_module.stitch(kp_source, kp)
        return kp

    def encode(self, images: Tensor) -> dict[str, Tensor]:
        return self.warping_module.encode_source(self.appearance_feature_extractor(self._input(images)))

    def animate(self, encoded: dict[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        return self.spade_generator(self.warping_module.warp(encoded, kp_source, kp_driving)["out"])

    def _animate(self, encoded: dict[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        fn = self._compiled if self._compiled is not None else self.animate
        return fn(encoded, kp_source, kp_driving)

    # -- inference -----------------------------------------------------------------------------
    def driving_keypoints(  # type: ignore[override]
        self,
        source: SourceState,
        pitch: Tensor,
        yaw: Tensor,
        roll: Tensor,
        t: Tensor,
        exp: Tensor,
        scale: Tensor,
        stitch: bool = True,
    ) -> Tensor:
        """Posed keypoints ``(N, K, 3)``: ``scale * (kp_canonical @ R + exp) + (t_x, t_y, 0)`` of the
        source's canonical keypoints, stitched against the source's keypoints (when the stitching
        network is loaded and ``stitch``).

        Args:
            source: from :meth:`prepare_source`.
            pitch, yaw, roll: ``(N,)`` degrees.
            t: ``(N, 3)``; exp: ``(N, 3K)``; scale: ``(N, 1)``.
        """
        n = t.shape[0]
        kp_canonical = source.kp_canonical.to(t.device).expand(n, -1, -1)
        motion = {"pitch": pitch, "yaw": yaw, "roll": roll, "t": t, "exp": exp, "scale": scale}
        kp = keypoints_from_motion(kp_canonical, motion)
        if stitch and self.stitching_retargeting_module is not None:
            kp = self.stitching_retargeting_module.stitch(source.kp_source.to(kp.device), kp)
        return kp
