"""FaceRenderer: self-reconstruction training of the face-vid2vid renderer on MEAD clips.

Each training item is a pair of frames of one clip: the **source** (``source_frame``, a random
frame of the clip) and the **driving** frames (the window's ``frames``). The canonical keypoint
detector looks at the source; the head estimator at both; the generator warps the source's
appearance volume from the source keypoints to the driving keypoints and must reproduce the
driving frame. Losses (each weight configurable, defaults those of the public vox-256 training):

* ``perceptual``: multi-scale (image pyramid) L1 of VGG19 features relu1_1..relu5_1, one weight per
  layer (ImageNet weights through the weight registry, :class:`VGG19Features`);
* ``l1``: multi-scale pixel L1 (off in the public recipe; useful where no VGG19 weights exist);
* ``equivariance``: the driving keypoints must move with a random affine + TPS warp of the
  driving frame (x, y of the keypoints, :class:`emoface.geometry.warps.RandomTPS`);
* ``keypoint_prior``: driving keypoints at least ``sqrt(0.1)`` apart (hinge on squared distances of
  every pair) and their mean depth near 0.33;
* ``head_pose``: L1 (degrees) of the estimator's yaw, pitch and roll against the head pose that
  preprocessing already fitted to the driving frame's landmarks (``euler`` of the ``pose`` field).
  Both use ``R = Rx(pitch) Ry(yaw) Rz(roll)`` in the camera frame x right, y down
  (docs/data_format.md), the rotation the keypoints are posed with, so no extra pose network
  (the public code's Hopenet) is needed. The target is scaled by ``pi / 3.14`` because the
  keypoint maths convert the estimator's degrees with 3.14 (:data:`FACE_VID2VID_PI`): the posed
  keypoints then carry exactly the preprocessing's rotation;
* ``head_pose_bins``: cross-entropy of the 66 angle bins against the bin of that pose (Hopenet's
  own training objective, not in the public face-vid2vid recipe). The L1 of the softmax
  expectation alone has no gradient once the softmax saturates, and on mini-MEAD it did: the
  estimator locked onto one bin (0 degrees) for every frame within 500 steps and never left it;
* ``expression``: L1 norm of the expression deltas;
* ``mouth`` and ``mouth_expression`` (off by default, not in the public recipe): an L1 inside the
  driving frame's mouth box, and keypoint 0's y delta tied to the inner lips' opening, both from
  the ``landmarks`` field;
* ``landmark_guide`` (off by default; LivePortrait's landmark-guided keypoints, not in
  face-vid2vid's recipe): the first keypoints of source and driving frame, projected to the
  image, must land on chosen landmarks (``landmark_guide_points``) of their frames;
* with a ``discriminator``: hinge GAN loss on the image pyramid and feature matching; the
  discriminator takes its own hinge step (manual optimization, two optimizers).

Validation reconstructs every frame of a window from its clip's **first** frame (the
``source_frame`` of evaluation batches; that frame itself is left out of the scores) and logs ``val/psnr``, ``val/ssim`` (and ``val/lpips`` with
``val_lpips``), the same for the "source frame repeated" baseline (``val/psnr_source`` ...), the
PSNR of the renderer driven by the source's own keypoints held still (``val/psnr_held``: equal to
``val/psnr`` when the warp ignores the keypoints), the mean softmax weight of the dense motion's
"no motion" candidate (``val/background_weight``: near 1 when the warp has collapsed), with a
generator's ``image_skip`` the mean weight of the warped source image (``val/blend_weight``), the
estimator's angle errors against preprocessing (``val/yaw_error`` ...), and, every
``image_log_every_n_epochs``, a grid of source | driving | prediction images.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from emoface.geometry.keypoints import FACE_VID2VID_PI, bins_to_degrees, degrees_to_bins, keypoints_from_estimate
from emoface.geometry.landmarks import (
    MOUTH,
    NUM_LANDMARKS,
    inner_lip_opening,
    mirror_landmarks,
    pixels_to_grid,
    region_box_masks,
)
from emoface.geometry.rotations import mirror_euler
from emoface.geometry.warps import RandomTPS
from emoface.lightning_modules._figures import log_image_grid
from emoface.lightning_modules._frozen import on_device
from emoface.lightning_modules._hparams import save_hyperparameters_except_objects
from emoface.metrics import LPIPS, PSNR, SSIM
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    HeadExpressionEstimator,
    MultiScaleDiscriminator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
)
from emoface.networks.face_vid2vid.blocks import AntiAliasInterpolation2d
from emoface.networks.face_vid2vid.checkpoint import (
    default_generator,
    generator_class,
    generator_variant,
    load_face_vid2vid_state,
)
from emoface.networks.perceptual import VGG19Features

BATCH_FIELDS = ("frames", "source_frame", "pose")
"""MEADDataModule ``fields`` this module reads (docs/data_format.md)."""
ANGLES = ("yaw", "pitch", "roll")


class ImagePyramid(nn.Module):
    """Anti-aliased downscales of an image: ``{scale: (B, C, H * scale, W * scale)}``."""

    def __init__(self, scales: list[float], channels: int = 3) -> None:
        super().__init__()
        self.scales = [float(s) for s in scales]
        self.downs = nn.ModuleList(AntiAliasInterpolation2d(channels, s) for s in self.scales)

    def forward(self, images: Tensor) -> dict[float, Tensor]:
        return {scale: down(images) for scale, down in zip(self.scales, self.downs)}


def to_unit(images: Tensor) -> Tensor:
    """uint8 ``(..., 3, H, W)`` -> float in [0, 1] (floats pass through)."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def driving_landmarks(batch: dict[str, Any], option: str) -> Tensor:
    """``(B*T, 68, 3)`` the batch's landmarks in the order of :meth:`FaceRenderer.pairs`.

    Raises:
        KeyError: the batch has none (the datamodule's ``fields`` lack them); names ``option``.
    """
    if "landmarks" not in batch:
        raise KeyError(
            f"FaceRenderer's {option} needs each driving frame's landmarks: add 'landmarks' to the datamodule's "
            "fields (--data.init_args.fields)"
        )
    return batch["landmarks"].flatten(0, 1)


class FaceRenderer(LightningModule):
    """The face-vid2vid renderer as a trainable system (see the module docstring).

    Args:
        kp_detector: canonical keypoint detector (default: vox-256 sizes).
        he_estimator: head-pose / expression estimator (default: vox-256 sizes).
        generator: :class:`OcclusionAwareGenerator` or :class:`OcclusionAwareSPADEGenerator`
            (default: vox-256 sizes, the class ``init_checkpoint`` holds, else the plain one).
        discriminator: multi-scale patch discriminator; ``None`` trains without GAN losses.
        init_checkpoint: a face-vid2vid checkpoint (public vox-256 layout, or one written by
            :meth:`export`) to start from (fine-tuning); loaded strictly when training starts
            (:meth:`load_init_checkpoint`), not when a trained system is rebuilt from its own
            checkpoint or a run resumes, which then need not find that file again.
        perceptual_weights: weight of each VGG19 slice (5 values; all 0 disables the loss).
        perceptual_backbone: ``"imagenet"`` (torchvision's ``vgg19-dcbb9e9d.pth`` from the hub
            cache), a path to that file, or ``None`` for a random VGG19.
        l1_weight: weight of the multi-scale pixel L1.
        scales: image pyramid scales of the perceptual / L1 / GAN losses.
        equivariance_weight, keypoint_prior_weight, head_pose_weight, head_pose_bin_weight,
            expression_weight: loss weights.
        keypoint_min_distance: squared distance below which two keypoints are pushed apart.
        keypoint_depth: target mean depth of the keypoints.
        gan_weight: weight of the generator's hinge loss (with a discriminator).
        feature_matching_weights: weight per discriminator block of the feature-matching L1.
        sigma_affine, sigma_tps, points_tps: the equivariance warp.
        lr: Adam learning rate of every network; betas: Adam betas.
        lr_milestones: epochs at which the learning rate is divided by 10 (MultiStepLR), as in the
            public recipe.
        lr_decay_at: instead of ``lr_milestones``, the fraction of the run's optimizer steps
            (``trainer.max_steps``, or ``max_epochs`` epochs) after which the learning rate is divided
            by 10. Unlike an epoch milestone it falls at the same point of a run of any length or data
            size (renderer_small: step 3750 of its 5000).
        val_lpips: also compute LPIPS in validation (needs the AlexNet weights file).
        lpips_backbone_weights: that file (``None``: the torch hub cache).
        image_log_every_n_epochs: log the source | driving | prediction grid every n validation
            epochs (0: never); image_log_count: rows of the grid.
        pose_warmup_steps: train only the head estimator, on the head-pose losses, for this many
            first steps (0, the public recipe: no warm-up). Not in the public recipe: trained from
            scratch, the dense motion learns to ignore the keypoints (its "no motion" weight near
            1) within about 100 steps, long before the estimator has learned the pose (about 1000
            steps at renderer_small's sizes), and never recovers; see benchmarks/renderer_learning.py.
        zero_motion_heads: start the estimator's translation and expression heads at zero, so the
            untrained heads add no random motion between source and driving keypoints (not in the
            public recipe; ignored when fine-tuning from ``init_checkpoint``).
        warmup_autoencode: during the pose warm-up, the generator also learns to redraw each driving
            frame from itself, warped by its own keypoints held still (the identity warp), with the
            image losses (not in the public recipe). Every candidate of the dense motion is then the
            identity, so its softmax has nothing to learn (it is left as it is) and cannot learn to
            ignore the keypoints, while the encoder and decoder learn to draw faces before the warp
            starts (after 2400 steps without it, renderer_small redraws its own source at 20.4 dB).
            Measured on the free-motion data: +0.3 to +0.7 dB on held-out actors after 2500 steps,
            about the spread between runs, for twice the warm-up's time: off in renderer_small.
        angles_from_pose_losses: the estimator's angles enter the keypoints detached, so that only
            the head-pose losses set them and the image, warp and equivariance losses move the
            translation, expression and canonical keypoints around them (not in the public recipe,
            where every loss reaches the angles). On the free-motion data the image losses pull the
            estimator's pitch off the known pose mid-run (error 15 deg at step 2000, 2.6 at 3000).
        warp_weight: weight of an L1 between the driving frame and the source image warped by the
            dense motion alone (the generator's ``warped_source``; needs a generator with
            ``image_skip``). Not in the public recipe: it asks the warp itself, not the decoder
            behind it, to explain the motion. Measured on the free-motion data (held-out actors):
            driven minus held still 1.56 dB with it at 2500 steps against 0.85 without it at 2000,
            2.53 dB at 4000; it pulls the estimator's pitch off for a while (error 15 deg at step
            2000, 2.6 at 3000); see benchmarks/renderer_learning.py.
        horizontal_flip: mirror each training pair (source and driving frame alike) with probability
            1/2, and its head pose with it (yaw and roll change sign, pitch stays). The public
            recipe's ``augmentation_params.flip_param.horizontal_flip`` mirrors whole clips (with
            probability 1/4 there, as its time flip, on too, takes the other half first); its pose
            teacher (Hopenet) looks at the mirrored frames, here the known pose is mirrored. Mirror
            images add identities and poses the estimator has not seen.
        mouth_weight: weight of an L1 between prediction and driving frame inside the box of the
            driving frame's mouth landmarks (mean over the box; needs the datamodule's ``landmarks``
            field). Not in the public recipe: at 64 px the mouth is about 1 % of the frame. Alone it
            did not open the drawn mouths (no keypoint said where they open); with
            ``landmark_guide_weight`` it makes the generator draw the dark inside of an open mouth
            (configs/renderer_small.yaml; see benchmarks/renderer_learning.py, "The mouth").
        mouth_margin: that box grown on every side by this fraction of its larger side.
        mouth_expression_weight: weight of a squared error, in pixels, between the expression delta
            of keypoint 0 along y (down) and the driving frame's mouth opening (inner lips, landmarks
            62 to 66; the delta in the keypoints' units, 2 / width per pixel; needs the
            ``landmarks`` field). Not in the public recipe: like the head-pose loss, which takes
            preprocessing's pose where the recipe asks a pretrained pose network, it hands the
            estimator what the landmarks already know, so that one keypoint moves with the jaw and
            the generator can learn to open the mouth with it. It trains during the pose warm-up
            too, with the pose (see benchmarks/renderer_learning.py, "The mouth").
        landmark_guide_weight: weight of LivePortrait's landmark guidance: keypoint ``i`` of the
            source and of the driving frame, its x, y in the image, must land on landmark
            ``landmark_guide_points[i]`` of that frame; the loss is the mean squared distance in
            pixels (LivePortrait takes a Wing loss on 10 eye and lip points; a squared error here,
            as an L1 made the estimator give every frame the median mouth opening, see
            ``mouth_expression_weight``). Needs the ``landmarks`` field. The keypoint prior's spread
            leaves pairs of guided keypoints alone: their places are the landmarks'. Not in
            face-vid2vid's recipe: its keypoints are unsupervised, and at 64 px no keypoint came
            to follow the mouth, so the renderer drew every mouth closed. Trains during the pose
            warm-up too (the keypoint detector and estimator only).
        landmark_guide_points: the iBUG-68 landmark each of the first keypoints is guided to; the
            default: the mouth corners (48, 54) and the middles of the outer lips (51, 57).
        landmark_guide_shape_weight: weight of the same squared distance with each frame's mean
            error over the guided points taken out: the guided points' shape (the mouth's opening
            and width), free of the pose's and translation's errors, which the position term also
            pays. Not in LivePortrait (see benchmarks/renderer_learning.py, "The mouth's shape":
            configs/renderer_small.yaml sets 16, and the inner lips' keypoints then follow the
            opening in the three trainings measured). Needs ``landmark_guide_weight``.
    """

    def __init__(
        self,
        kp_detector: CanonicalKeypointDetector | None = None,
        he_estimator: HeadExpressionEstimator | None = None,
        generator: OcclusionAwareGenerator | OcclusionAwareSPADEGenerator | None = None,
        discriminator: MultiScaleDiscriminator | None = None,
        init_checkpoint: str | None = None,
        perceptual_weights: list[float] = [10.0, 10.0, 10.0, 10.0, 10.0],  # noqa: B006 - jsonargparse needs lists
        perceptual_backbone: str | None = "imagenet",
        l1_weight: float = 0.0,
        scales: list[float] = [1.0, 0.5, 0.25, 0.125],  # noqa: B006
        equivariance_weight: float = 10.0,
        keypoint_prior_weight: float = 10.0,
        keypoint_min_distance: float = 0.1,
        keypoint_depth: float = 0.33,
        head_pose_weight: float = 20.0,
        head_pose_bin_weight: float = 1.0,
        expression_weight: float = 5.0,
        gan_weight: float = 1.0,
        feature_matching_weights: list[float] = [10.0, 10.0, 10.0, 10.0],  # noqa: B006
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_milestones: list[int] | None = None,
        lr_decay_at: float | None = None,
        val_lpips: bool = False,
        lpips_backbone_weights: str | None = None,
        image_log_every_n_epochs: int = 1,
        image_log_count: int = 4,
        pose_warmup_steps: int = 0,
        zero_motion_heads: bool = False,
        warmup_autoencode: bool = False,
        warp_weight: float = 0.0,
        angles_from_pose_losses: bool = False,
        horizontal_flip: bool = False,
        mouth_weight: float = 0.0,
        mouth_margin: float = 0.25,
        mouth_expression_weight: float = 0.0,
        landmark_guide_weight: float = 0.0,
        landmark_guide_points: list[int] = [48, 51, 54, 57],  # noqa: B006
        landmark_guide_shape_weight: float = 0.0,
    ) -> None:
        super().__init__()
        save_hyperparameters_except_objects(self)
        self.automatic_optimization = False  # generator and discriminator steps alternate
        self.kp_detector = kp_detector if kp_detector is not None else CanonicalKeypointDetector()
        self.he_estimator = he_estimator if he_estimator is not None else HeadExpressionEstimator()
        if lr_decay_at is not None and not 0 <= lr_decay_at <= 1:
            raise ValueError(f"lr_decay_at is a fraction of the run's steps (0 to 1), got {lr_decay_at}")
        if lr_decay_at is not None and lr_milestones:
            raise ValueError(f"set lr_milestones ({lr_milestones}) or lr_decay_at ({lr_decay_at}), not both")
        self._lr_decay_step: int | None = None  # lr_decay_at in optimizer steps (set in on_train_start)
        if pose_warmup_steps < 0:
            raise ValueError(f"pose_warmup_steps must be >= 0, got {pose_warmup_steps}")
        if warmup_autoencode and not pose_warmup_steps:
            raise ValueError(
                "warmup_autoencode trains the generator during the pose warm-up: set pose_warmup_steps > 0"
            )
        if zero_motion_heads and init_checkpoint is None:
            for head in (self.he_estimator.fc_t, self.he_estimator.fc_exp):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        # Not given: the class init_checkpoint holds (the public vox-256 file: SPADE), else plain.
        self.generator = generator if generator is not None else default_generator(init_checkpoint)
        self._default_generator = generator is None
        if min(mouth_weight, mouth_margin, mouth_expression_weight) < 0:
            raise ValueError(f"mouth_weight, mouth_margin and mouth_expression_weight must be >= 0, got "
                             f"{mouth_weight}, {mouth_margin} and {mouth_expression_weight}")  # fmt: skip
        if landmark_guide_weight < 0:
            raise ValueError(f"landmark_guide_weight must be >= 0, got {landmark_guide_weight}")
        if landmark_guide_shape_weight < 0 or (landmark_guide_shape_weight and not landmark_guide_weight):
            raise ValueError(f"landmark_guide_shape_weight must be >= 0 and needs landmark_guide_weight > 0, got "
                             f"{landmark_guide_shape_weight} with landmark_guide_weight {landmark_guide_weight}")  # fmt: skip
        num_kp = self.kp_detector.num_kp
        if (
            len(set(landmark_guide_points)) != len(landmark_guide_points)
            or not all(0 <= point < NUM_LANDMARKS for point in landmark_guide_points)
            or len(landmark_guide_points) > num_kp
        ):
            raise ValueError(
                f"landmark_guide_points must be distinct iBUG-68 indices (0 to 67), at most one per keypoint "
                f"({num_kp}), got {landmark_guide_points}"
            )
        if warp_weight and not getattr(self.generator, "image_skip", False):
            raise ValueError("warp_weight scores the generator's warped source image: it needs a generator "
                             "with image_skip=True")  # fmt: skip
        self.discriminator = discriminator
        if len(perceptual_weights) != 5:
            raise ValueError(f"perceptual_weights needs one weight per VGG19 slice (5), got {perceptual_weights}")
        # The frozen VGG19 is built when training starts (:meth:`perceptual_network`) and kept out
        # of the module tree: checkpoints then hold the renderer only (not 80 MB of ImageNet
        # weights), and rebuilding a trained system for inference needs no VGG19 file.
        self._frozen: dict[str, nn.Module] = {}
        self.pyramid = ImagePyramid(scales)
        # "_source": the source frame repeated; "_held": the renderer driven by the source's own
        # keypoints held still. A renderer whose warp ignores the keypoints scores the same driven
        # and held still (the collapse this makes visible in every run).
        self.metrics = nn.ModuleDict(
            {f"{what}{suffix}": cls() for what, cls in (("psnr", PSNR), ("ssim", SSIM)) for suffix in ("", "_source")}
        )
        self.metrics["psnr_held"] = PSNR()
        if val_lpips:
            for suffix in ("", "_source"):
                self.metrics[f"lpips{suffix}"] = LPIPS(backbone_weights=lpips_backbone_weights)
        self._angle_errors: list[Tensor] = []
        self._grid_rows: list[np.ndarray] = []

    def load_init_checkpoint(self) -> None:
        """Load ``init_checkpoint`` into the keypoint detector, estimator and generator (strict).

        Raises:
            MissingWeightsError: the file does not exist.
            CheckpointMismatchError: its networks have other sizes (the message lists the keys).
        """
        load_face_vid2vid_state(
            self.hparams.init_checkpoint, kp_detector=self.kp_detector, he_estimator=self.he_estimator,
            generator=self.generator,
        )  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A default-built generator takes the class the saved weights belong to (an init_checkpoint
        # no longer on disk when the system is rebuilt gave the plain default).
        saved = checkpoint.get("state_dict", {})
        state = {key.removeprefix("generator."): value for key, value in saved.items() if key.startswith("generator.")}
        if self._default_generator and state:
            variant = generator_variant(state)
            if not isinstance(self.generator, generator_class(variant)):
                self.generator = generator_class(variant)()

    def perceptual_network(self, device: torch.device | None = None) -> VGG19Features | None:
        """The perceptual loss's VGG19 (built on first use; ``None`` when its weights are all 0)."""
        if not any(self.hparams.perceptual_weights):
            return None
        if "vgg" not in self._frozen:
            self._frozen["vgg"] = VGG19Features(self.hparams.perceptual_backbone)
        return on_device(self._frozen["vgg"], device or self.device)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.perceptual_network()  # a missing VGG19 file stops the run before the first step
        if stage == "fit" and self.discriminator is not None:
            self._check_ddp_settings()
        if stage == "fit" and self.hparams.init_checkpoint is not None and self.trainer.ckpt_path is None:
            self.load_init_checkpoint()

    def _check_ddp_settings(self) -> None:
        """Fail early, with the fix, where DDP would fail at the discriminator's first backward."""
        from lightning.pytorch.strategies import DDPStrategy

        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
            raise ValueError(
                "FaceRenderer with a discriminator under DDP needs find_unused_parameters: the discriminator's "
                "step leaves the generator's parameters unused. Run with --trainer.strategy "
                "ddp_find_unused_parameters_true (or ddp_spawn_find_unused_parameters_true)."
            )

    # ------------------------------------------------------------------------------------------
    # Inference pieces
    def estimate(self, images: Tensor) -> dict[str, Tensor]:
        """Head estimator outputs plus their angles in degrees (``yaw_deg`` ... ``(B,)``)."""
        estimate = self.he_estimator(images)
        for name in ANGLES:
            estimate[f"{name}_deg"] = bins_to_degrees(estimate[name])
        return estimate

    def reconstruct(self, source: Tensor, driving: Tensor) -> dict[str, Any]:
        """Render ``driving`` frames from ``source`` frames (one source per driving frame).

        Args:
            source: ``(N, 3, H, W)`` in [0, 1].
            driving: ``(N, 3, H, W)`` in [0, 1].

        Returns:
            the generator's outputs (``prediction (N, 3, H, W)``, ``mask``, ``occlusion_map``)
            plus ``kp_canonical``, ``kp_source``, ``kp_driving`` ``(N, K, 3)`` and the estimates
            ``he_source``, ``he_driving``.
        """
        kp_canonical = self.kp_detector(source)["value"]
        he_source, he_driving = self.estimate(source), self.estimate(driving)
        kp_source = self.keypoints(kp_canonical, he_source)
        kp_driving = self.keypoints(kp_canonical, he_driving)
        generated = dict(self.generator(source, kp_driving={"value": kp_driving}, kp_source={"value": kp_source}))
        generated.update(
            kp_canonical=kp_canonical, kp_source=kp_source, kp_driving=kp_driving,
            he_source=he_source, he_driving=he_driving,
        )  # fmt: skip
        return generated

    def keypoints(self, kp_canonical: Tensor, estimate: dict[str, Tensor]) -> Tensor:
        """Posed keypoints ``(N, K, 3)`` from canonical ``(N, K, 3)`` and the estimator's outputs; the
        angles detached with ``angles_from_pose_losses``."""
        if self.hparams.angles_from_pose_losses:
            estimate = {**estimate, **{name: estimate[name].detach() for name in ANGLES}}
        return keypoints_from_estimate(kp_canonical, estimate)

    @staticmethod
    def pairs(batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """Flatten a batch into (source, driving, driving euler): ``(B*T, 3, H, W)`` x2, ``(B*T, 3)``."""
        frames = batch["frames"]  # (B, T, 3, H, W)
        b, t = frames.shape[:2]
        driving = to_unit(frames.flatten(0, 1))
        source = to_unit(batch["source_frame"]).repeat_interleave(t, dim=0)
        return source, driving, batch["euler"].reshape(b * t, 3)

    @staticmethod
    def mirror_pairs(source: Tensor, driving: Tensor, euler: Tensor, mirrored: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The pairs of :meth:`pairs` mirrored left-right where ``mirrored (N,)`` bool is set, their
        head pose with them (:func:`~emoface.geometry.rotations.mirror_euler`)."""
        flip = mirrored.view(-1, 1, 1, 1)
        return (
            torch.where(flip, source.flip(-1), source),
            torch.where(flip, driving.flip(-1), driving),
            torch.where(mirrored.view(-1, 1), mirror_euler(euler), euler),
        )

    def mouth_masks(self, batch: dict[str, Any], size: tuple[int, int]) -> Tensor:
        """``(B*T, 1, H, W)`` masks of each driving frame's mouth box (``mouth_margin`` grown), in the
        order of :meth:`pairs`.

        Raises:
            KeyError: the batch has no ``landmarks`` (the datamodule's ``fields`` lack it).
        """
        landmarks = driving_landmarks(batch, "mouth_weight")
        return region_box_masks(landmarks, MOUTH, *size, margin=self.hparams.mouth_margin)

    @staticmethod
    def mouth_opening(batch: dict[str, Any], width: int) -> Tensor:
        """``(B*T,)`` each driving frame's inner-lip opening (landmarks 62 to 66) in the keypoints'
        units (2 / ``width`` per pixel), in the order of :meth:`pairs`. A mirror image opens alike."""
        return inner_lip_opening(driving_landmarks(batch, "mouth_expression_weight")[..., :2]) * (2.0 / width)

    def guide_targets(self, batch: dict[str, Any], size: tuple[int, int], mirrored: Tensor | None = None) -> Tensor:
        """``(B*T, 2, P, 2)`` the ``landmark_guide_points`` of each pair's source (index 0) and
        driving frame (1), x, y in the keypoints' grid units, in the order of :meth:`pairs`; where
        ``mirrored (B*T,)`` is set, those of the mirror images (:meth:`mirror_pairs`).

        Raises:
            KeyError: the batch has no ``landmarks`` (the datamodule's ``fields`` lack it).
        """
        driving = driving_landmarks(batch, "landmark_guide_weight")[..., :2]  # (B*T, 68, 2)
        # The datamodule adds the source frame's landmarks with the landmarks field.
        source = batch["source_landmarks"][..., :2]  # (B, 68, 2)
        source = source.repeat_interleave(driving.shape[0] // source.shape[0], 0)
        both = torch.stack([source, driving], 1)  # (B*T, 2, 68, 2)
        if mirrored is not None:
            both = torch.where(mirrored.view(-1, 1, 1, 1), mirror_landmarks(both, size[1]), both)
        points = both[:, :, list(self.hparams.landmark_guide_points)]
        return pixels_to_grid(points, *size)

    def landmark_guide_losses(
        self, kp_source: Tensor, kp_driving: Tensor, targets: Tensor, size: tuple[int, int]
    ) -> dict[str, Tensor]:
        """``"landmark_guide"``: ``landmark_guide_weight`` x the mean squared distance, in pixels of a
        ``size`` ``(H, W)`` frame, between the first P keypoints ``(N, K, 3)`` of source and
        driving, x and y, and their landmarks ``targets (N, 2, P, 2)`` (:meth:`guide_targets`); with
        ``landmark_guide_shape_weight``, ``"landmark_guide_shape"``: the same with each frame's mean
        error over the P points subtracted."""
        p = targets.shape[2]
        keypoints = torch.stack([kp_source[:, :p, :2], kp_driving[:, :p, :2]], 1)
        to_pixels = targets.new_tensor([(size[1] - 1) / 2, (size[0] - 1) / 2])
        error = (keypoints - targets) * to_pixels  # (N, 2, P, 2)
        losses = {"landmark_guide": self.hparams.landmark_guide_weight * error.pow(2).sum(-1).mean()}
        if self.hparams.landmark_guide_shape_weight:
            shape = error - error.mean(2, keepdim=True)
            losses["landmark_guide_shape"] = self.hparams.landmark_guide_shape_weight * shape.pow(2).sum(-1).mean()
        return losses

    # ------------------------------------------------------------------------------------------
    # Losses
    def generator_losses(
        self, source: Tensor, driving: Tensor, euler: Tensor, mouth_masks: Tensor | None = None,
        mouth_opening: Tensor | None = None, guide_targets: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], dict]:
        """Weighted losses of the keypoint detector, estimator and generator, and the outputs;
        ``mouth_masks (N, 1, H, W)`` (:meth:`mouth_masks`) adds the ``mouth`` loss,
        ``mouth_opening (N,)`` (:meth:`mouth_opening`) the ``mouth_expression`` loss and
        ``guide_targets (N, 2, P, 2)`` (:meth:`guide_targets`) the ``landmark_guide`` loss."""
        hp = self.hparams
        out = self.reconstruct(source, driving)
        real, fake = self.pyramid(driving), self.pyramid(out["prediction"])
        losses = self.image_losses(real, fake)
        if hp.mouth_weight and mouth_masks is not None:
            error = (out["prediction"] - driving).abs() * mouth_masks
            losses["mouth"] = hp.mouth_weight * error.sum() / (mouth_masks.sum() * driving.shape[1]).clamp_min(1.0)
        if hp.warp_weight:
            losses["warp"] = hp.warp_weight * (out["warped_source"] - driving).abs().mean()
        if self.discriminator is not None and hp.gan_weight:
            maps_fake = self.discriminator(self._disc_input(fake))
            with torch.no_grad():
                maps_real = self.discriminator(self._disc_input(real))
            losses["gan"] = hp.gan_weight * sum(-m.mean() for m in self._predictions(maps_fake))
            if any(hp.feature_matching_weights):
                matching = driving.new_zeros(())
                for real_maps, fake_maps in zip(self._features(maps_real), self._features(maps_fake)):
                    for weight, a, b in zip(hp.feature_matching_weights, real_maps, fake_maps):
                        if weight:
                            matching = matching + weight * (a - b).abs().mean()
                losses["feature_matching"] = matching
        if hp.equivariance_weight:
            warp = RandomTPS(driving.shape[0], hp.sigma_affine, hp.sigma_tps, hp.points_tps, device=driving.device)
            warped_kp = self.keypoints(out["kp_canonical"], self.he_estimator(warp.warp_images(driving)))
            # The keypoints of the warped frame, warped back, must land on the driving keypoints.
            value = (out["kp_driving"][..., :2] - warp.warp_coordinates(warped_kp[..., :2])).abs().mean()
            losses["equivariance"] = hp.equivariance_weight * value
        if hp.keypoint_prior_weight:
            kp = out["kp_driving"]
            squared = torch.cdist(kp, kp).pow(2)  # (N, K, K)
            off_diagonal = ~torch.eye(kp.shape[1], dtype=torch.bool, device=kp.device)
            if hp.landmark_guide_weight and guide_targets is not None:
                guided = torch.arange(kp.shape[1], device=kp.device) < guide_targets.shape[2]
                off_diagonal &= ~(guided[:, None] & guided[None, :])  # the landmarks place those
            # Sum over ordered pairs of the batch-mean hinge (the public definition, without the
            # constant diagonal terms, which carry no gradient).
            spread = F.relu(hp.keypoint_min_distance - squared)[:, off_diagonal].mean(0).sum()
            depth = (kp[..., 2].mean(-1) - hp.keypoint_depth).abs().mean()
            losses["keypoint_prior"] = hp.keypoint_prior_weight * (spread + depth)
        he = out["he_driving"]
        losses.update(self.pose_losses(he, euler))
        if hp.expression_weight:
            losses["expression"] = hp.expression_weight * he["exp"].abs().sum(-1).mean()
        if hp.mouth_expression_weight and mouth_opening is not None:
            losses["mouth_expression"] = self.mouth_expression_loss(he, mouth_opening, driving.shape[-1])
        if hp.landmark_guide_weight and guide_targets is not None:
            size = driving.shape[-2:]
            losses.update(self.landmark_guide_losses(out["kp_source"], out["kp_driving"], guide_targets, size))
        return losses, out

    def mouth_expression_loss(self, he: dict[str, Tensor], mouth_opening: Tensor, width: int) -> Tensor:
        """``mouth_expression_weight`` x the mean squared error, in pixels of a ``width`` wide frame, of
        keypoint 0's y expression delta against ``mouth_opening (N,)`` (:meth:`mouth_opening`). Squared,
        not L1: with an L1 the estimator settled on the median opening for every frame."""
        jaw = he["exp"][:, 1]  # keypoint 0's y delta (the deltas are (K, 3) flattened)
        return self.hparams.mouth_expression_weight * ((jaw - mouth_opening) * (width / 2)).pow(2).mean()

    def image_losses(self, real: dict[float, Tensor], fake: dict[float, Tensor]) -> dict[str, Tensor]:
        """Weighted ``perceptual`` and ``l1`` losses of predicted against real image pyramids
        (:class:`ImagePyramid` outputs)."""
        hp = self.hparams
        losses: dict[str, Tensor] = {}
        full = real[self.pyramid.scales[0]]  # the finest level: its device and dtype
        vgg = self.perceptual_network(full.device)
        if vgg is not None:
            total = full.new_zeros(())
            for scale in self.pyramid.scales:
                fake_features, real_features = vgg(fake[scale]), vgg(real[scale])
                for weight, a, b in zip(hp.perceptual_weights, fake_features, real_features):
                    if weight:
                        total = total + weight * (a - b.detach()).abs().mean()
            losses["perceptual"] = total
        if hp.l1_weight:
            losses["l1"] = hp.l1_weight * sum((fake[s] - real[s]).abs().mean() for s in self.pyramid.scales)
        return losses

    def autoencode_losses(self, images: Tensor) -> dict[str, Tensor]:
        """Image losses of the generator redrawing ``images (N, 3, H, W)`` from themselves, warped by
        their own keypoints held still (see ``warmup_autoencode``). The keypoints are detached: the
        identity warp carries no information about them."""
        with torch.no_grad():
            kp = keypoints_from_estimate(self.kp_detector(images)["value"], self.he_estimator(images))
        prediction = self.generator(images, kp_driving={"value": kp}, kp_source={"value": kp})["prediction"]
        losses = self.image_losses(self.pyramid(images), self.pyramid(prediction))
        return {f"autoencode_{name}": value for name, value in losses.items()}

    def pose_losses(self, he: dict[str, Tensor], euler: Tensor) -> dict[str, Tensor]:
        """Weighted head-pose losses of estimates ``he`` (:meth:`estimate`) against preprocessing's
        ``euler (N, 3)`` degrees: ``head_pose`` (L1 of the angles) and ``head_pose_bins``."""
        hp = self.hparams
        target = euler * (math.pi / FACE_VID2VID_PI)  # in the estimator's degree unit (see above)
        losses: dict[str, Tensor] = {}
        if hp.head_pose_weight:
            value = sum((he[f"{name}_deg"] - target[:, k]).abs().mean() for k, name in enumerate(ANGLES))
            losses["head_pose"] = hp.head_pose_weight * value
        if hp.head_pose_bin_weight:
            value = sum(F.cross_entropy(he[name], degrees_to_bins(target[:, k])) for k, name in enumerate(ANGLES))
            losses["head_pose_bins"] = hp.head_pose_bin_weight * value
        return losses

    def _disc_input(self, pyramid: dict[float, Tensor]) -> dict[str, Tensor]:
        """The public discriminator's input: ``{"prediction_<scale>": image}`` for its own scales."""
        return {f"prediction_{scale:g}": pyramid[float(scale)] for scale in self.discriminator.scales}

    def _predictions(self, maps: dict[str, Any]) -> list[Tensor]:
        return [maps[f"prediction_map_{scale:g}"] for scale in self.discriminator.scales]

    def _features(self, maps: dict[str, Any]) -> list[list[Tensor]]:
        return [maps[f"feature_maps_{scale:g}"] for scale in self.discriminator.scales]

    def discriminator_loss(self, driving: Tensor, prediction: Tensor) -> Tensor:
        """Hinge loss of the discriminator on real frames and (detached) predictions."""
        real = self.discriminator(self._disc_input(self.pyramid(driving)))
        fake = self.discriminator(self._disc_input(self.pyramid(prediction.detach())))
        total = driving.new_zeros(())
        for r, f in zip(self._predictions(real), self._predictions(fake)):
            total = total + F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
        return self.hparams.gan_weight * total

    # ------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        optimizers = self.optimizers()
        opt_g, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        self._decay_learning_rate([opt for opt in (opt_g, opt_d) if opt is not None])
        source, driving, euler = self.pairs(batch)
        mouth, opening = None, None
        if self.hparams.mouth_weight and self.global_step >= self.hparams.pose_warmup_steps:
            mouth = self.mouth_masks(batch, driving.shape[-2:])
        if self.hparams.mouth_expression_weight:
            opening = self.mouth_opening(batch, driving.shape[-1])
        mirrored = None
        if self.hparams.horizontal_flip:
            mirrored = torch.rand(driving.shape[0], device=driving.device) < 0.5
            source, driving, euler = self.mirror_pairs(source, driving, euler, mirrored)
            if mouth is not None:
                mouth = torch.where(mirrored.view(-1, 1, 1, 1), mouth.flip(-1), mouth)
        guide = None
        if self.hparams.landmark_guide_weight:
            guide = self.guide_targets(batch, driving.shape[-2:], mirrored)
        if self.global_step < self.hparams.pose_warmup_steps:
            # The estimator alone learns the head pose first (see ``pose_warmup_steps``): only its
            # parameters get gradients (and, with ``landmark_guide_weight``, the keypoint
            # detector's), so the optimizer leaves every other network as it is;
            # with ``warmup_autoencode`` the generator learns to draw through the identity warp.
            he = self.estimate(driving)
            losses = self.pose_losses(he, euler)
            if opening is not None:  # the jaw keypoint is learned with the pose
                losses["mouth_expression"] = self.mouth_expression_loss(he, opening, driving.shape[-1])
            if guide is not None:  # so are the guided keypoints (detector and estimator only)
                kp_canonical = self.kp_detector(source)["value"]
                kp_source = self.keypoints(kp_canonical, self.estimate(source))
                size = driving.shape[-2:]
                losses.update(self.landmark_guide_losses(kp_source, self.keypoints(kp_canonical, he), guide, size))
            if self.hparams.warmup_autoencode:
                losses.update(self.autoencode_losses(driving))
            loss = sum(losses.values())
            opt_g.zero_grad()
            self.manual_backward(loss)
            if self.hparams.warmup_autoencode:
                # The identity warp gives the softmax's logits conv only rounding-error gradients
                # (~1e-8), which Adam would scale up to full-size random steps: leave it as it is.
                for parameter in self.generator.dense_motion_network.mask.parameters():
                    parameter.grad = None
            self._clip(opt_g)
            opt_g.step()
            self.log_dict({f"train/{name}": value.detach() for name, value in losses.items()}, batch_size=driving.shape[0])
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=driving.shape[0])
            return
        if opt_d is not None:
            self.toggle_optimizer(opt_g)  # no discriminator gradients from the generator's losses
        losses, out = self.generator_losses(source, driving, euler, mouth, opening, guide)
        loss = sum(losses.values())
        opt_g.zero_grad()
        self.manual_backward(loss)
        self._clip(opt_g)
        opt_g.step()
        logs = {f"train/{name}": value.detach() for name, value in losses.items()}
        if opt_d is not None:
            self.untoggle_optimizer(opt_g)
            self.toggle_optimizer(opt_d)
            disc_loss = self.discriminator_loss(driving, out["prediction"])
            opt_d.zero_grad()
            self.manual_backward(disc_loss)
            self._clip(opt_d)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            logs["train/discriminator"] = disc_loss.detach()
        self.log_dict(logs, batch_size=driving.shape[0])
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=driving.shape[0])

    def _clip(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradient clipping under manual optimization (the trainer's ``gradient_clip_val``)."""
        value = self.trainer.gradient_clip_val
        if value:
            self.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm="norm")

    def on_train_start(self) -> None:
        # Known now that the trainer has its data; each fit counts its own run (an endless run
        # stops here, before its first step).
        self._lr_decay_step = None if self.hparams.lr_decay_at is None else self.lr_decay_step()

    def _decay_learning_rate(self, optimizers: list[Any]) -> None:
        """``lr_decay_at``: the learning rate / 10 from that step on. A function of the global step
        alone, so a resumed run continues the same schedule without scheduler state."""
        if self._lr_decay_step is None:
            return
        lr = self.hparams.lr * (0.1 if self.global_step >= self._lr_decay_step else 1.0)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def lr_decay_step(self) -> int:
        """The global step at which ``lr_decay_at`` divides the learning rate by 10: that fraction of
        the run's optimizer steps (each optimizer's step counts, as ``trainer.max_steps`` counts them
        under manual optimization).

        Raises:
            ValueError: the run has no end (``max_steps`` and ``max_epochs`` both -1).
        """
        # Not trainer.estimated_stepping_batches: it counts batches, while the global step (and so
        # max_steps and pose_warmup_steps) counts each optimizer's step under manual optimization.
        trainer = self.trainer
        bounds = [] if trainer.max_steps in (None, -1) else [trainer.max_steps]
        if trainer.max_epochs not in (None, -1):
            optimizers = 1 if self.discriminator is None else 2
            bounds.append(trainer.max_epochs * trainer.num_training_batches * optimizers)
        if not bounds or math.isinf(min(bounds)):
            raise ValueError(
                f"lr_decay_at={self.hparams.lr_decay_at} is a fraction of the run: set trainer.max_steps "
                "or trainer.max_epochs"
            )
        return int(self.hparams.lr_decay_at * min(bounds))

    def on_train_epoch_end(self) -> None:
        for scheduler in self._schedulers():
            scheduler.step()

    def _schedulers(self) -> list[Any]:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    # ------------------------------------------------------------------------------------------
    def _evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str) -> None:
        frames = batch["frames"]
        b, t = frames.shape[:2]
        source, driving, euler = self.pairs(batch)
        out = self.reconstruct(source, driving)
        prediction = out["prediction"].clamp(0, 1).view(b, t, *driving.shape[1:])
        target = driving.view(b, t, *driving.shape[1:])
        repeated = source.view(b, t, *driving.shape[1:])
        kp_source = {"value": out["kp_source"]}
        held = self.generator(source, kp_driving=kp_source, kp_source=kp_source)["prediction"]
        videos = {"": prediction, "_source": repeated, "_held": held.clamp(0, 1).view_as(prediction)}
        # The source frame itself, when inside the window, is left out: the baseline would be perfect.
        index = batch["start"].view(b, 1) + torch.arange(t, device=frames.device)
        keep = index != batch["source_index"].view(b, 1)
        for k in range(b):
            if keep[k].any():
                for name, metric in self.metrics.items():
                    video = videos[name[name.find("_"):] if "_" in name else ""]
                    metric.update(video[k, keep[k]].unsqueeze(0), target[k, keep[k]].unsqueeze(0))
        he = out["he_driving"]
        errors = torch.stack([(he[f"{n}_deg"] - euler[:, k] * (math.pi / FACE_VID2VID_PI)).abs()
                              for k, n in enumerate(ANGLES)], -1)  # fmt: skip
        self._angle_errors.append(errors.detach())
        self.log(f"{stage}/loss_l1", (prediction - target).abs().mean(), batch_size=b, sync_dist=True)
        # Mean softmax weight of the dense motion's identity ("no motion") candidate: near 1, the
        # warp has collapsed and the keypoints no longer move anything.
        self.log(f"{stage}/background_weight", out["mask"][:, 0].mean(), batch_size=b, sync_dist=True)
        if "blend" in out:  # a generator with image_skip: how much of each frame is the warped source
            self.log(f"{stage}/blend_weight", out["blend"].mean(), batch_size=b, sync_dist=True)
        if stage == "val" and len(self._grid_rows) < self.hparams.image_log_count:
            middle = t // 2  # one driving frame of the window per row
            for k in range(min(b, self.hparams.image_log_count - len(self._grid_rows))):
                row = torch.cat([repeated[k, middle], target[k, middle], prediction[k, middle]], dim=-1)
                self._grid_rows.append((row.permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8))

    def _log_epoch(self, stage: str) -> None:
        for name, metric in self.metrics.items():
            self.log(f"{stage}/{name}", metric.compute().float())
            metric.reset()
        if self._angle_errors:
            errors = torch.cat(self._angle_errors).mean(0)
            # Mean over this rank's frames; ranks are averaged (frame counts per rank are equal
            # up to the last batch under the distributed sampler).
            for k, name in enumerate(ANGLES):
                self.log(f"{stage}/{name}_error", errors[k], sync_dist=True)
        self._angle_errors.clear()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        every = self.hparams.image_log_every_n_epochs
        if self._grid_rows and every and self.current_epoch % every == 0 and self.trainer.is_global_zero \
                and not self.trainer.sanity_checking:  # fmt: skip
            grid = np.concatenate(self._grid_rows, axis=0)
            log_image_grid(self.trainer, grid, "val/source_driving_prediction", self.global_step, self.current_epoch)
        self._grid_rows.clear()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # ------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        networks = [self.kp_detector, self.he_estimator, self.generator]
        params = [p for net in networks for p in net.parameters() if p.requires_grad]
        # The fused kernel: one pass over the ~350 tensors instead of a Python loop (the renderer_small
        # step's Adam 20 -> 4 ms on one CPU thread); the same update to float rounding.
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters())
        optimizers = [torch.optim.Adam(params, lr=hp.lr, betas=tuple(hp.betas), fused=fused)]
        if self.discriminator is not None:
            disc = self.discriminator.parameters()
            optimizers.append(torch.optim.Adam(disc, lr=hp.lr, betas=tuple(hp.betas), fused=fused))
        if not hp.lr_milestones:
            return optimizers
        schedulers = [torch.optim.lr_scheduler.MultiStepLR(opt, hp.lr_milestones, gamma=0.1) for opt in optimizers]
        return optimizers, schedulers

    def export(self, path: str | os.PathLike) -> None:
        """Write the three networks in the public checkpoint layout (``generator``, ``kp_detector``,
        ``he_estimator``, plus ``discriminator`` when there is one), loadable by
        :func:`load_face_vid2vid_state` and by the public face-vid2vid / SadTalker code (a generator
        with ``image_skip`` is not a public network: its file loads here with
        ``generator_params={"image_skip": True}``)."""
        state = {
            "generator": self.generator.state_dict(),
            "kp_detector": self.kp_detector.state_dict(),
            "he_estimator": self.he_estimator.state_dict(),
        }
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
        torch.save(state, path)
