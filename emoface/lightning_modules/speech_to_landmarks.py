"""SpeechToLandmarks: stage 1 of emoface (audio + emotion + reference face -> landmarks, gaze, pose).

Training is teacher-forced with scheduled sampling (landmarks: the real previous landmarks are
fed, then, ramping up, the network's own, until only its own are; pose and gaze: always the
network's own, :mod:`emoface.networks.sequentializer`); validation, test and predict generate
free-running. Losses (each weight configurable):

* ``landmark``: L1 of normalized landmarks, measured in pixels of the head (canonical units times
  the ground-truth head scale), mouth points weighted by ``mouth_weight``;
* ``velocity``: L1 of their frame-to-frame differences;
* ``gaze_ce`` + ``gaze_l1``: cross-entropy over the gaze bins and L1 of the expected angles
  (degrees), weighted by ``gaze_confidence``;
* ``pose``: geodesic rotation error (degrees), translation L1 (pixels) and log-scale L1 (the
  translation is predicted around the mean training placement, which each training step updates
  with the batch's real translations);
* ``emotion``: cross-entropy of the collaborative emotion classifier on the generated cue
  sequence against the conditioning emotion (the classifier's weights receive no gradient);
  ``emotion_loss_cues="separate"`` judges the generated landmarks beside the real gaze and pose
  and the generated motion beside the generated landmarks held fixed instead (see the argument);
* ``motion`` (stochastic networks, ``network.noise_dim > 0``): the energy score of the sampled
  head-rotation and gaze trajectories (:func:`energy_score`, per cue group), plus the per-frame
  score of their velocities (:func:`increment_energy_score`, ``motion_increment_weight``) and the
  score of the yaw cues' within-window amplitude (:func:`spread_energy_score`,
  ``motion_spread_weight``) and the squared error of the head's expected speed per frame
  (:func:`speed_score`, ``motion_speed_weight``); it replaces the deterministic gaze terms (CE +
  L1) and the rotation L1 (translation and scale keep their L1).

Stochastic motion. Head pose and gaze are mostly not determined by the inputs (the emotion fixes
their statistics, the prosody part of the head's motion); an L1 trains their conditional median,
which is still. A stochastic network samples them from noise (in a motion branch beside the
landmark stream, :mod:`emoface.networks.sequentializer`, so these scores do not train the lips),
and each training window is generated ``motion_samples`` times (2) with independent noise; the
energy score ``E||X - y|| - 1/2 E||X - X'||`` over the whole window's trajectory of each cue
(head yaw, pitch, roll; gaze yaw and pitch as the eyes' conjugate motion and vergence,
:func:`motion_vectors`, in degrees, weighted by ``gaze_confidence``) is a
strictly proper scoring rule (Gneiting & Raftery 2007), minimised only when the samples'
distribution is the data's, including temporal structure, because it scores whole trajectories. Unlike a GAN it has
no critic to balance and no mode collapse pressure; unlike a VAE it needs no posterior network
and no KL weight to tune the sample spread, which is exactly what must be right here. Its pull on
each frame is weak, though (the gradient of a window-long norm), so each frame's velocity is also
scored on its own: the head then moves about as fast as the real one and nods with the voice
instead of jittering, the amplitude of head and gaze yaw, mostly free wander, is scored too, and
so is the expected speed of the head at each frame, which is what the voice drives in a turn of
random side (:meth:`SpeechToLandmarks.motion_loss`). Every added term scores a function of the
trajectory with a proper rule (or, for the speed, a consistent score of its mean), so the data's
distribution still minimises the sum.
Evaluation and prediction are seeded: each window's noise comes from ``motion_seed``, its clip
and its start frame, so a fixed seed reproduces the same sequences on any device or batch size.

The collaborative classifier is either loaded frozen from ``emotion_classifier_checkpoint``
(trained by ``emoface fit --config configs/cue_emotion_classifier.yaml``: the paper's setting and
the benchmark's), or, when that is ``None``, trained jointly in this module on the real cue
sequences of each batch (``classifier`` loss) while the ``emotion`` loss still treats it as a
fixed critic. Either way the generator never changes the critic.

Validation / test metrics (free-running generation, :mod:`emoface.metrics` Metrics, DDP-synced):
``lmd``, ``m_lmd`` (mouth), ``f_lmd`` (face without mouth) in pixels (x, y) on the pose-free
landmarks (normalized landmarks scaled by the ground-truth head scale: lips and expression
without the head-pose error, which is measured separately), ``posed_lmd``/``posed_m_lmd``/
``posed_f_lmd`` on the relocated landmarks against the real ones in the crop, ``gaze_error``
(degrees), ``rotation_error`` (degrees), ``translation_error`` (pixels) and ``emotion_accuracy``
of the generated sequences according to the collaborative classifier; motion
(:mod:`emoface.metrics.motion`): ``motion/std_ratio/<cue>`` and ``motion/velocity_ratio/<cue>``
(generated over real within-clip motion per emotion, averaged over emotions), ``motion_fd`` (the
Frechet motion distance) and ``motion_energy_corr`` / ``motion_energy_corr_real`` (head motion
against speech energy). Validation also logs ``val/motion`` each figure epoch: real and
generated within-clip motion per emotion and cue, side by side.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from emoface.emotions import EMOTIONS
from emoface.geometry.alignment import umeyama
from emoface.geometry.landmarks import MOUTH, NUM_LANDMARKS
from emoface.geometry.relocation import relocate
from emoface.geometry.rotations import geodesic_angle, matrix_to_euler
from emoface.lightning_modules._hparams import save_hyperparameters_except_objects
from emoface.lightning_modules.cue_emotion_classifier import load_classifier_weights
from emoface.metrics import (
    FrechetMotionDistance,
    GazeError,
    LandmarkDistance,
    MotionEnergyCorrelation,
    MotionStatistics,
    PoseError,
)
from emoface.metrics import functional as MF
from emoface.networks.audio import AUDIO_ROWS_PER_FRAME
from emoface.networks.cue_classifier import CueEmotionClassifierNet
from emoface.networks.cues import cue_features
from emoface.networks.sequentializer import CueOutput, Reference
from emoface.networks.speech_to_landmarks import SpeechToLandmarksNet

BATCH_FIELDS = ("audio", "normalized_landmarks", "landmarks", "pose", "gaze", "reference")
"""MEADDataModule ``fields`` this module reads (docs/data_format.md)."""


MOTION_GROUPS = {"head_yaw": (0,), "head_pitch": (1,), "head_roll": (2,), "gaze_yaw": (3, 5), "gaze_pitch": (4, 6)}
"""Columns of :func:`motion_vectors` scored together (each gaze angle's conjugate and vergence parts)."""


def motion_vectors(euler: Tensor, gaze: Tensor) -> Tensor:
    """The trajectories the energy score compares ``(B, T, 7)``, degrees: Euler (yaw, pitch, roll),
    the conjugate gaze ``(left + right) / sqrt(2)`` (yaw, pitch) and the vergence
    ``(left - right) / sqrt(2)`` (yaw, pitch) of the per-eye gaze ``(B, T, 2, 2)``.

    Why not the two eyes as they are: the eyes move together (real left / right yaw correlation
    0.80 on mini-MEAD), and a per-coordinate score (the amplitude, :func:`spread_energy_score`)
    of each eye alone is met as well by eyes wandering apart: one of four training runs settled
    there (left / right correlation -0.26, the gaze seen, the eyes' mean, at 0.4-0.5 of the real
    amplitude). The rotation is orthonormal, so the Euclidean scores of the pair are unchanged;
    what changes is that the amplitude is scored for the conjugate gaze and the vergence apart.
    """
    left, right = gaze[..., 0, :], gaze[..., 1, :]
    return torch.cat([euler, (left + right) * 0.5**0.5, (left - right) * 0.5**0.5], -1)


def energy_score(samples: Tensor, target: Tensor, weight: Tensor | None = None, beta: float = 1.0) -> Tensor:
    """Energy score of sampled trajectories against the real one, per sequence ``(B,)``.

    ``ES = mean_i ||X_i - y||^beta - 1/2 mean_{i != j} ||X_i - X_j||^beta`` with the Euclidean norm
    over the whole trajectory (frames x dims), divided by ``sqrt(T)`` (a per-frame scale, like an L1
    in degrees). For ``0 < beta < 2`` a strictly proper scoring rule for the trajectory's
    distribution; ``beta = 2`` scores only its mean: it is then an unbiased estimate of
    ``||E X - y||^2``, the squared error of the samples' mean (with two samples ``(X_1 - y)(X_2 - y)``),
    proper but not strictly. With one sample it is the plain distance (no spread term).

    Args:
        samples: ``(S, B, T, D)`` trajectories generated from independent noise.
        target: ``(B, T, D)`` the real trajectory.
        weight: ``(B, T, D)`` per-coordinate weights (e.g. gaze confidence), or ``None``.
        beta: exponent of the distances, ``0 < beta <= 2``.
    """
    if samples.ndim != 4 or samples.shape[1:] != target.shape:
        raise ValueError(f"samples must be (S, *target.shape) = (S, {tuple(target.shape)}), got {tuple(samples.shape)}")
    if not 0.0 < beta <= 2.0:
        raise ValueError(f"beta must be in (0, 2], got {beta}")
    weight = torch.ones_like(target) if weight is None else weight
    norm = float(target.shape[1]) ** 0.5
    accuracy = ((((samples - target) * weight).flatten(2).norm(dim=-1) / norm) ** beta).mean(0)  # (B,)
    count = samples.shape[0]
    if count < 2:
        return accuracy
    spread = [(((samples[i] - samples[j]) * weight).flatten(1).norm(dim=-1) / norm) ** beta
              for i in range(count) for j in range(i + 1, count)]  # fmt: skip
    return accuracy - 0.5 * torch.stack(spread).mean(0)


def _increments(samples: Tensor, target: Tensor, lag: int, weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """The ``lag``-frame increments of sampled ``(S, B, T, D)`` and real ``(B, T, D)`` trajectories,
    ``(S, B, T - lag, D)`` and ``(B, T - lag, D)``, with each increment's weight ``weight[t] *
    weight[t - lag]`` ``(B, T - lag, D)`` (ones when ``weight`` is ``None``)."""
    if samples.ndim != 4 or samples.shape[1:] != target.shape or not 1 <= lag < target.shape[1]:
        raise ValueError(f"samples must be (S, *target.shape) with 1 <= lag < T, got {tuple(samples.shape)}, "
                         f"{tuple(target.shape)} and lag {lag}")  # fmt: skip
    weight = torch.ones_like(target) if weight is None else weight
    return (
        samples[:, :, lag:] - samples[:, :, :-lag],
        target[:, lag:] - target[:, :-lag],
        weight[:, lag:] * weight[:, :-lag],
    )


def increment_energy_score(samples: Tensor, target: Tensor, lag: int = 1, weight: Tensor | None = None) -> Tensor:
    """Energy score of the ``lag``-frame increments ``x[t] - x[t - lag]``, each frame scored on its
    own ``(B, T - lag)``.

    Why per frame and not over the whole window as :func:`energy_score`: the trajectory norm's
    gradient is shared out over all frames and dominated by the largest residual, the slow
    wander's, so the fast motion the voice drives (a nod on each loud syllable) gets almost no
    pull; scored per frame, each frame's increment must match the distribution of the real one at
    that moment, which rewards nods timed with the speech and penalises jitter. Longer lags score
    how far the cue moves over several frames. For one-dimensional groups this is the CRPS of
    each increment.

    Args:
        samples: ``(S, B, T, D)`` trajectories (as :func:`energy_score`).
        target: ``(B, T, D)`` the real trajectory.
        lag: frames between the two ends of an increment (``1 <= lag < T``).
        weight: ``(B, T, D)`` per-coordinate weights; an increment counts ``weight[t] * weight[t - lag]``.
    """
    sampled, real, counted = _increments(samples, target, lag, weight)
    count, batch, frames, dims = sampled.shape
    rows = batch * frames  # each frame's increment a sequence of one frame
    scores = energy_score(
        sampled.reshape(count, rows, 1, dims), real.reshape(rows, 1, dims), counted.reshape(rows, 1, dims)
    )
    return scores.reshape(batch, frames)


def speed_score(samples: Tensor, target: Tensor, lag: int = 1, weight: Tensor | None = None) -> Tensor:
    """Squared error of each frame's expected speed, estimated without bias from the samples ``(B, T - lag)``.

    A frame's speed is the norm of its ``lag``-frame increment over the group's coordinates. With
    independent sampled speeds ``s_i`` and the real speed ``s``, ``mean_{i != j} (s_i - s)(s_j - s)``
    (:func:`energy_score` with ``beta = 2``) estimates ``(E s_i - s)^2`` without bias, and the
    squared error is a consistent scoring function for the mean (Gneiting 2011): the data's own
    speed distribution minimises it, so adding it to the strictly proper scores keeps their sum
    proper. Why it is needed beside :func:`increment_energy_score`: a head turn on a pitch accent
    goes to a random side, so its expected velocity is 0 and only its expected speed follows the
    voice; the CRPS pulls on that through the sign of each error (an L1), which on mini-MEAD left
    the sampled head moving as fast during pauses as while speaking, while the squared error
    pulls in proportion to how far the expected speed is off, the way a regression learns a
    conditional mean. With one sample it is the plain squared error (which also penalises spread).

    Args:
        samples: ``(S, B, T, D)`` trajectories (as :func:`energy_score`).
        target: ``(B, T, D)`` the real trajectory.
        lag: frames between the two ends of an increment (``1 <= lag < T``).
        weight: ``(B, T, D)`` per-coordinate weights; a frame's speed counts with the smallest of
            its coordinates' ``weight[t] * weight[t - lag]``.
    """
    sampled, real, counted = _increments(samples, target, lag, weight)
    count, batch, frames = sampled.shape[:3]
    rows = batch * frames  # each frame's speed a sequence of one frame, one dimension
    scores = energy_score(
        sampled.norm(dim=-1).reshape(count, rows, 1, 1),
        real.norm(dim=-1).reshape(rows, 1, 1),
        counted.amin(-1).reshape(rows, 1, 1),
        beta=2.0,
    )
    return scores.reshape(batch, frames)


def spread_energy_score(samples: Tensor, target: Tensor, weight: Tensor | None = None, eps: float = 1e-4) -> Tensor:
    """Energy score of each coordinate's within-window standard deviation (its amplitude), per
    sequence ``(B,)``.

    The std is a function of the trajectory, so scoring it with a proper rule keeps the sum of
    scores proper (the data's distribution still minimises every term), while it pulls directly on
    how far a cue moves within the window, which the trajectory score leaves weak once the
    velocity is scored per frame. For one-dimensional groups this is the CRPS of the std.

    Args:
        samples: ``(S, B, T, D)`` trajectories (as :func:`energy_score`).
        target: ``(B, T, D)`` the real trajectory.
        weight: ``(B, T, D)`` per-frame weights of the mean and std (e.g. gaze confidence), or ``None``.
        eps: added to the variance (a finite gradient for a still sample).
    """
    if samples.ndim != 4 or samples.shape[1:] != target.shape:
        raise ValueError(f"samples must be (S, *target.shape) = (S, {tuple(target.shape)}), got {tuple(samples.shape)}")
    weight = torch.ones_like(target) if weight is None else weight
    total = weight.sum(-2, keepdim=True).clamp_min(1e-6)  # (B, 1, D)

    def spread(x: Tensor) -> Tensor:
        mean = (x * weight).sum(-2, keepdim=True) / total
        return (((x - mean) ** 2 * weight).sum(-2, keepdim=True) / total + eps).sqrt()

    return energy_score(spread(samples), spread(target))


def repeat_batch(batch: dict[str, Any], times: int) -> dict[str, Any]:
    """The batch ``times`` times along the batch dimension (tensors and lists), for several samples."""
    if times == 1:
        return batch
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim > 0:
            out[key] = value.repeat(times, *([1] * (value.ndim - 1)))
        elif isinstance(value, (list, tuple)):
            out[key] = list(value) * times
        else:
            out[key] = value
    return out


def window_seeds(batch: dict[str, Any], seed: int) -> list[int]:
    """A noise seed per window of a batch from ``seed``, its clip id and start frame (stable across
    processes, batch sizes and ranks); the position in the batch when clip ids are missing."""
    size = int(batch["emotion"].shape[0])
    clips = batch.get("clip", [str(i) for i in range(size)])
    starts = batch.get("start", torch.zeros(size, dtype=torch.long))
    return [
        int(np.random.SeedSequence([seed, zlib.crc32(str(clip).encode()), int(start)]).generate_state(1)[0])
        for clip, start in zip(clips, starts)
    ]


def reference_pose(batch: dict[str, Any]) -> Reference:
    """The reference face's normalized landmarks and head pose (similarity fitted to its landmarks).

    Args:
        batch: with ``ref_landmarks`` and ``ref_normalized_landmarks`` ``(B, 68, 3)``.
    """
    normalized = batch["ref_normalized_landmarks"]
    _, translation, scale = umeyama(normalized, batch["ref_landmarks"])
    return Reference(normalized, translation, scale)


class SpeechToLandmarks(LightningModule):
    """Stage 1 system (see the module docstring for losses and metrics).

    Args:
        network: the generator (default: :class:`SpeechToLandmarksNet` with its defaults).
            ``gaze_bins`` and ``autoregressive`` (ablations) are its arguments.
        emotion_classifier: the collaborative classifier network.
        emotion_classifier_checkpoint: checkpoint of a trained :class:`CueEmotionClassifier`
            to load and freeze; ``None`` trains the classifier jointly on real cues.
        use_gaze: generate gaze (False: gaze is zero, looking ahead, and its losses are off).
        use_pose: generate head pose (False: the reference's pose is held, pose losses are off).
        landmark_weight: weight of the landmark L1 (pixels).
        mouth_weight: relative weight of the 20 mouth points in the landmark L1.
        velocity_weight: weight of the velocity L1 (pixels per frame).
        gaze_ce_weight: weight of the gaze-bin cross-entropy.
        gaze_l1_weight: weight of the gaze angle L1 (degrees).
        pose_weight: weight of the pose loss (rotation degrees + translation pixels + 10 x log-scale).
        emotion_loss_weight: weight of the emotion alignment cross-entropy (0 disables it).
        emotion_loss_cues: what the emotion loss classifies. ``joint`` (the paper's): the
            generated landmarks, gaze and pose together. ``separate``: the mean of two
            cross-entropies, the generated landmarks with the window's real gaze and pose (it
            trains the landmarks) and the generated gaze and pose with the generated landmarks
            held fixed (it trains the motion). ``configs/s2l.yaml`` uses ``separate``: with sampled
            motion the joint loss makes the landmarks carry the emotion for every motion sample,
            and the mouth learns a lasting exaggeration (issue 24; benchmarks/s2l_learning.py).
        classifier_weight: weight of the joint classifier's own loss on real cues (joint mode only).
        sampling_max: final scheduled-sampling probability (of feeding the landmarks' own previous
            output instead of the real one; pose and gaze are never teacher-forced, see the
            network's ``free_running_cues``). 1.0: training ends exactly as free running generates.
        sampling_start: optimizer step where scheduled sampling starts (pure teacher forcing before).
        sampling_ramp: steps over which the probability ramps linearly from 0 to ``sampling_max``.
        optimizer: optimizer factory (default AdamW, lr 1e-3, weight decay 1e-4).
        scheduler: LR scheduler factory (stepped per epoch), or ``None``.
        output_dir: where ``predict`` writes per-clip cue files (default
            ``<trainer.default_root_dir>/s2l_predictions``).
        figure_every_n_epochs: log the generated-vs-real figure (curves) and picture grid
            (landmarks, gaze arrows and pose axes of a few frames, ``val/cue_frames``) every n
            validation epochs (0: never).
        video_every_n_epochs: every n validation epochs, also write the real and generated cues of
            one window as an mp4 beside the figures (with its audio when the batches carry
            ``waveform``) and send it to Weights & Biases (0: never).
        motion_weight: weight of the energy score of sampled pose and gaze (stochastic networks).
        motion_samples: samples per training window for the energy score (>= 2 for its spread term).
        motion_seed: seed of the motion noise in validation, test and predict (per window: this,
            the clip and the start frame); change it for another sample of the same inputs.
        motion_increment_weight: weight, inside the motion term, of each cue group's per-frame
            energy scores of its increments (:func:`increment_energy_score`) beside the score of
            its trajectory.
            0 scores the trajectories only (the model before it; ``configs/sweeps/s2l_motion.yaml``).
        motion_increment_lags: the increments' lags (frames), one score each (summed); (1,): the
            frame-to-frame velocity. (Lags 1, 4 and 16 together were measured no better on mini-MEAD.)
        motion_spread_weight: weight, inside the motion term, of the score of each cue's within-window
            amplitude (:func:`spread_energy_score`) for the ``motion_spread_groups``; 0: none.
        motion_spread_groups: the :data:`MOTION_GROUPS` whose amplitude is scored (default the yaw
            of head and gaze, the cues whose motion is mostly free wander; see :meth:`motion_loss`).
        motion_speed_weight: weight, inside the motion term, of the squared error of each frame's
            expected speed (:func:`speed_score`, at each of the ``motion_increment_lags``) for the
            ``motion_speed_groups``; 0: none.
        motion_speed_groups: the :data:`MOTION_GROUPS` whose speed is scored (default the head's
            three angles, whose speed follows the voice; gaze saccades are left to the velocity
            score, their squared speeds would swamp the sum).
    """

    def __init__(
        self,
        network: SpeechToLandmarksNet | None = None,
        emotion_classifier: CueEmotionClassifierNet | None = None,
        emotion_classifier_checkpoint: str | None = None,
        use_gaze: bool = True,
        use_pose: bool = True,
        landmark_weight: float = 1.0,
        mouth_weight: float = 3.0,
        velocity_weight: float = 1.0,
        gaze_ce_weight: float = 0.2,
        gaze_l1_weight: float = 0.05,
        pose_weight: float = 0.2,
        emotion_loss_weight: float = 0.5,
        emotion_loss_cues: str = "joint",
        classifier_weight: float = 1.0,
        sampling_max: float = 1.0,
        sampling_start: int = 200,
        sampling_ramp: int = 1000,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        output_dir: str | None = None,
        figure_every_n_epochs: int = 1,
        video_every_n_epochs: int = 0,
        motion_weight: float = 0.15,
        motion_samples: int = 2,
        motion_seed: int = 0,
        motion_increment_weight: float = 15.0,
        motion_increment_lags: Sequence[int] = (1,),
        motion_spread_weight: float = 5.0,
        motion_spread_groups: Sequence[str] = ("head_yaw", "gaze_yaw"),
        motion_speed_weight: float = 15.0,
        motion_speed_groups: Sequence[str] = ("head_yaw", "head_pitch", "head_roll"),
    ) -> None:
        super().__init__()
        if motion_samples < 1:
            raise ValueError(f"motion_samples must be >= 1, got {motion_samples}")
        if emotion_loss_cues not in ("joint", "separate"):
            raise ValueError(f"emotion_loss_cues must be 'joint' or 'separate', got {emotion_loss_cues!r}")
        save_hyperparameters_except_objects(self)
        self.network = network if network is not None else SpeechToLandmarksNet()
        self.classifier = emotion_classifier if emotion_classifier is not None else CueEmotionClassifierNet()
        self.frozen_classifier = emotion_classifier_checkpoint is not None
        if self.frozen_classifier:
            load_classifier_weights(self.classifier, emotion_classifier_checkpoint)
            self.classifier.requires_grad_(False)
            self.classifier.eval()
        self.emotion_loss_cues = emotion_loss_cues
        self.use_gaze = use_gaze
        self.use_pose = use_pose
        self.stochastic = bool(getattr(self.network, "stochastic", False))
        self.motion_samples = motion_samples if self.stochastic else 1
        self.motion_seed = motion_seed
        self.motion_increment_weight = motion_increment_weight
        self.motion_increment_lags = tuple(int(lag) for lag in motion_increment_lags)
        self.motion_spread_weight = motion_spread_weight
        self.motion_spread_groups = tuple(motion_spread_groups)
        self.motion_speed_weight = motion_speed_weight
        self.motion_speed_groups = tuple(motion_speed_groups)
        for option, groups in (("motion_spread_groups", self.motion_spread_groups), ("motion_speed_groups", self.motion_speed_groups)):
            unknown_groups = set(groups) - set(MOTION_GROUPS)
            if unknown_groups:
                raise ValueError(f"{option} must be among {tuple(MOTION_GROUPS)}, got {sorted(unknown_groups)}")
        if any(lag < 1 for lag in self.motion_increment_lags):
            raise ValueError(f"motion_increment_lags must be >= 1 frame, got {self.motion_increment_lags}")
        deterministic_motion = not self.stochastic  # stochastic: the energy score replaces gaze/pose L1 and CE
        self.weights = {
            "landmark": landmark_weight,
            "velocity": velocity_weight,
            "gaze_ce": gaze_ce_weight if use_gaze and deterministic_motion else 0.0,
            "gaze_l1": gaze_l1_weight if use_gaze and deterministic_motion else 0.0,
            "pose": pose_weight if use_pose else 0.0,
            "motion": motion_weight if self.stochastic and (use_gaze or use_pose) else 0.0,
            "emotion": emotion_loss_weight,
            "classifier": 0.0 if self.frozen_classifier else classifier_weight,
        }
        point_weights = torch.ones(NUM_LANDMARKS)
        point_weights[list(MOUTH)] = mouth_weight
        self.register_buffer("point_weights", point_weights / point_weights.mean(), persistent=False)
        self.sampling_max = sampling_max
        self.sampling_start = sampling_start
        self.sampling_ramp = sampling_ramp
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.output_dir = output_dir
        self.figure_every_n_epochs = figure_every_n_epochs
        self.video_every_n_epochs = video_every_n_epochs
        self._figure_sample: dict[str, np.ndarray] | None = None
        self._motion_table: dict[str, np.ndarray] | None = None
        self._predictions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.val_metrics = self._make_metrics()
        self.test_metrics = self._make_metrics()

    @staticmethod
    def _make_metrics() -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "landmarks": LandmarkDistance(),
                "posed_landmarks": LandmarkDistance(),
                "gaze": GazeError(),
                "pose": PoseError(),
                "emotion": MulticlassAccuracy(len(EMOTIONS), average="micro"),
                "motion": MotionStatistics(),
                "motion_fd": FrechetMotionDistance(),
                "motion_energy": MotionEnergyCorrelation(),
            }
        )

    # ------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> SpeechToLandmarks:
        """Like ``nn.Module.train`` but a frozen classifier always stays in eval mode."""
        super().train(mode)
        if self.frozen_classifier:
            self.classifier.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """Give epoch-seeded samplers the true epoch number.

        Lightning sets a sampler's epoch from its "processed epochs" counter, which a run resumed
        from an end-of-epoch checkpoint restores one short; the epoch number itself is restored
        correctly, so a resumed run would otherwise replay the previous epoch's windows.
        """
        loader = self.trainer.train_dataloader
        for candidate in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            if hasattr(candidate, "set_epoch"):
                candidate.set_epoch(self.current_epoch)

    def sampling_probability(self) -> float:
        """Scheduled-sampling probability at the current optimizer step."""
        if self.sampling_max <= 0.0:
            return 0.0
        progress = (self.global_step - self.sampling_start) / max(1, self.sampling_ramp)
        return float(min(max(progress, 0.0), 1.0) * self.sampling_max)

    def generate(
        self,
        batch: dict[str, Any],
        teacher_forcing: bool = False,
        sampling_probability: float = 0.0,
        seed: int | None = None,
    ) -> CueOutput:
        """Generate the cues of a batch's windows.

        Args:
            batch: MEADDataModule batch with ``audio``, ``emotion``, ``level`` and the reference
                fields (plus the ground-truth cues when ``teacher_forcing``).
            teacher_forcing: feed the ground-truth previous cues (training).
            sampling_probability: scheduled-sampling probability (with teacher forcing).
            seed: stochastic networks: the motion seed (per window with its clip and start, see
                :func:`window_seeds`); ``None``: ``motion_seed`` when free running, the global RNG
                with teacher forcing (training).

        Returns:
            :class:`CueOutput` ``(B, T, ...)``, with gaze zeroed when ``use_gaze`` is off and the
            reference pose held when ``use_pose`` is off.
        """
        reference = reference_pose(batch)
        teacher = None
        if teacher_forcing:
            teacher = cue_features(
                batch["normalized_landmarks"],
                batch["gaze"] if self.use_gaze else torch.zeros_like(batch["gaze"]),
                batch["rotation"],
                batch["translation"],
                batch["scale"],
                reference.normalized_landmarks,
                reference.translation,
                reference.scale,
            )
            if not self.use_pose:
                teacher = self._hold_reference_pose_features(teacher)
        noise = None
        if self.stochastic and (seed is not None or not teacher_forcing):
            seeds = window_seeds(batch, self.motion_seed if seed is None else seed)
            frames = batch["audio"].shape[1] // AUDIO_ROWS_PER_FRAME
            noise = self.network.seeded_noise(seeds, frames, batch["audio"])
        out = self.network(batch["audio"], batch["emotion"], batch["level"], reference, teacher, sampling_probability,
                           noise)  # fmt: skip
        return self._apply_ablations(out, reference)


    @staticmethod
    def _hold_reference_pose_features(features: Tensor) -> Tensor:
        """Zero the pose part of cue features (``use_pose`` off: the reference pose is held)."""
        features = features.clone()
        features[..., NUM_LANDMARKS * 3 + 4 :] = 0.0
        return features

    def _apply_ablations(self, out: CueOutput, reference: Reference) -> CueOutput:
        if self.use_gaze and self.use_pose:
            return out
        gaze, rotation, translation, scale = out.gaze, out.rotation, out.translation, out.scale
        if not self.use_gaze:
            gaze = torch.zeros_like(gaze)
        if not self.use_pose:
            batch, frames = scale.shape
            rotation = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand(batch, frames, 3, 3)
            translation = reference.translation.unsqueeze(1).expand(batch, frames, 3)
            scale = reference.scale.unsqueeze(1).expand(batch, frames)
        return out._replace(gaze=gaze, rotation=rotation, translation=translation, scale=scale)

    def classify(
        self, normalized_landmarks: Tensor, gaze: Tensor, rotation: Tensor, critic: bool, reference: Tensor | None = None
    ) -> Tensor:
        """Emotion logits ``(B, 8)`` of cue sequences by the collaborative classifier.

        Args:
            normalized_landmarks: ``(B, T, 68, 3)``.
            gaze: ``(B, T, 2, 2)`` degrees.
            rotation: ``(B, T, 3, 3)``.
            reference: ``(B, 68, 3)`` reference normalized landmarks (identity removal).
            critic: use the classifier as a fixed critic: gradients reach the cues but never the
                classifier's weights (they are detached for this call).
        """
        if not critic or self.frozen_classifier:
            return self.classifier(normalized_landmarks, gaze, rotation, reference)
        params = {name: value.detach() for name, value in self.classifier.named_parameters()}
        params.update(dict(self.classifier.named_buffers()))
        return torch.func.functional_call(self.classifier, params, (normalized_landmarks, gaze, rotation, reference))

    # ------------------------------------------------------------------------------------------
    # Losses
    # ------------------------------------------------------------------------------------------
    def losses(self, out: CueOutput, batch: dict[str, Any], samples: int = 1) -> dict[str, Tensor]:
        """Every loss term (unweighted) of generated cues against a batch.

        Args:
            out: generated cues; with ``samples > 1``, the batch's windows ``samples`` times over
                (``repeat_batch``), each copy with its own motion noise.
            batch: the batch (repeated like ``out``).
            samples: copies of each window in ``out`` (the energy score's samples).
        """
        target = batch["normalized_landmarks"]
        head_scale = batch["scale"][..., None, None]  # (B, T, 1, 1) pixels per canonical unit
        error = (out.normalized_landmarks - target).abs() * head_scale  # (B, T, 68, 3) pixels
        terms = {"landmark": (error.sum(-1) * self.point_weights).mean()}
        velocity_pred = out.normalized_landmarks.diff(dim=1) * head_scale[:, 1:]
        velocity_true = target.diff(dim=1) * head_scale[:, 1:]
        terms["velocity"] = ((velocity_pred - velocity_true).abs().sum(-1) * self.point_weights).mean()

        if self.use_gaze:
            confidence = batch.get("gaze_confidence", torch.ones_like(batch["gaze"][..., 0]))  # (B, T, 2)
            weight = confidence.unsqueeze(-1).expand_as(batch["gaze"])  # (B, T, 2, 2)
            bins = self.network.gaze_bins
            target_bins = bins.target_bins(batch["gaze"])
            ce = F.cross_entropy(out.gaze_logits.flatten(0, -2), target_bins.flatten(), reduction="none")
            norm = weight.sum().clamp_min(1.0)
            terms["gaze_ce"] = (ce * weight.flatten()).sum() / norm
            terms["gaze_l1"] = ((out.gaze - batch["gaze"]).abs() * weight).sum() / norm
        if self.use_pose:
            scale_error = torch.log(out.scale / batch["scale"]).abs().mean()
            if self.stochastic:  # the rotation is in the energy score
                translation_error = (out.translation - batch["translation"]).abs().sum(-1).mean()
                terms["pose"] = translation_error + 10.0 * scale_error
            else:
                rotation_error = geodesic_angle(out.rotation, batch["rotation"]).mean()
                translation_error = (out.translation - batch["translation"]).abs().sum(-1).mean()
                terms["pose"] = rotation_error + translation_error + 10.0 * scale_error
        if self.weights["motion"] > 0:
            terms["motion"] = self.motion_loss(out, batch, samples)
        if self.weights["emotion"] > 0:
            reference = batch["ref_normalized_landmarks"]
            if self.emotion_loss_cues == "joint":
                logits = self.classify(out.normalized_landmarks, out.gaze, out.rotation, True, reference)
                terms["emotion"] = F.cross_entropy(logits, batch["emotion"])
            else:
                real_gaze, real_rotation = self._real_motion(batch)
                lips = self.classify(out.normalized_landmarks, real_gaze, real_rotation, True, reference)
                motion = self.classify(out.normalized_landmarks.detach(), out.gaze, out.rotation, True, reference)
                terms["emotion"] = 0.5 * (F.cross_entropy(lips, batch["emotion"]) + F.cross_entropy(motion, batch["emotion"]))
        if self.weights["classifier"] > 0:
            logits = self.classify(target, *self._real_motion(batch), False, batch["ref_normalized_landmarks"])
            terms["classifier"] = F.cross_entropy(logits, batch["emotion"])
        return terms

    def _real_motion(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The batch's gaze ``(B, T, 2, 2)`` and rotation ``(B, T, 3, 3)`` as the classifier sees real
        cues: zero gaze without ``use_gaze`` and no rotation without ``use_pose``, as generated."""
        gaze = batch["gaze"] if self.use_gaze else torch.zeros_like(batch["gaze"])
        rotation = batch["rotation"] if self.use_pose else torch.eye(3).to(batch["rotation"]).expand_as(batch["rotation"])
        return gaze, rotation

    def motion_loss(self, out: CueOutput, batch: dict[str, Any], samples: int) -> Tensor:
        """Energy score of the generated head-rotation and gaze trajectories (``samples`` copies per
        window), plus ``motion_increment_weight`` times the per-frame scores of their increments
        (:func:`increment_energy_score`), summed over the :data:`MOTION_GROUPS`, plus
        ``motion_spread_weight`` times the score of the within-window amplitude
        (:func:`spread_energy_score`) of the ``motion_spread_groups``, plus ``motion_speed_weight``
        times the squared error of each frame's expected speed (:func:`speed_score`) of the
        ``motion_speed_groups``.

        The figures below were measured with the first stochastic design (one GRU reading the
        noise, constant learning rate); the current ones are in benchmarks/s2l_learning.py.

        Why per cue group and not one score over all cues: in a few hundred dimensions the energy
        score's pull on each cue's spread is weak (its gradient is dominated by the largest
        residuals), while each cue's own trajectory score calibrates that cue's amplitude directly.
        Why the increments too: the trajectory score alone left the timing loose; on mini-MEAD the
        sampled head moved 2.5 times as fast as the real one between frames (roll 6 times), jitter
        that drowned the nods on the voice (head-speed / energy correlation about 0 against 0.27
        real). Scored per frame, the velocity brings the speed to 1.0-1.3 times the real one and the
        correlation to 0.10-0.13 (seeds 0 and 1, benchmarks/s2l_learning.py). (Appending the
        velocity to the trajectory's scored vector instead was measured worse: the spread moved
        into jitter.)
        Why the yaw amplitude too: with the velocity scored, head and gaze yaw, whose motion is
        mostly free wander (turns of random side, fixations), kept only 0.6-0.7 of the real
        within-window std; scoring the std lifts them to 0.84-0.93 (one gaze yaw of four seeds
        0.49). Scored on every group it also spread the pitch into wander, away from the nods on
        the voice (pitch speed / energy correlation 0.04 against 0.17, seed 0), hence yaw only.
        Why the expected speed too: with the scores above, the sampled head moved about as fast
        as the real one but as much in pauses as while speaking: its yaw speed did not follow the
        voice at all (yaw-speed / energy correlation 0.03 against 0.20 real) and the nods on the
        voice were half their real size, so head-speed / energy correlation was 0.09-0.20 against
        0.27 real. The CRPS of the velocity pulls on a frame's speed only through the signs of
        its errors; the squared error of the expected speed pulls in proportion to the error, and
        the speed (not the velocity, whose mean is 0 for a turn of random side) is what the voice
        drives. With it (seed 0) the yaw-speed / energy correlation is 0.09 (0.03 before) and the
        pitch-speed one 0.12 (0.09); the head-speed / energy correlation over four seeds went from
        0.144 to 0.178 on average (benchmarks/s2l_learning.py).
        """
        pred = motion_vectors(matrix_to_euler(out.rotation), out.gaze)  # (S B, T, 7)
        true = motion_vectors(batch["euler"], batch["gaze"])
        weight = torch.ones_like(true)
        if "gaze_confidence" in batch:  # closed or unseen eyes carry no gaze; both parts need both eyes
            weight[..., 3:7] = batch["gaze_confidence"].prod(-1, keepdim=True)
        size = true.shape[0] // samples
        stacked = pred.reshape(samples, size, *pred.shape[1:])
        groups = [name for name in MOTION_GROUPS if self.use_pose or name.startswith("gaze")]
        groups = [name for name in groups if self.use_gaze or name.startswith("head")]
        total = stacked.new_zeros(())
        for name in groups:
            index = list(MOTION_GROUPS[name])
            samples_group, true_group, weight_group = stacked[..., index], true[:size, :, index], weight[:size, :, index]
            total = total + energy_score(samples_group, true_group, weight_group).mean()
            for lag in self.motion_increment_lags:
                if self.motion_increment_weight > 0:
                    increments = increment_energy_score(samples_group, true_group, lag, weight_group)
                    total = total + self.motion_increment_weight * increments.mean()
                if self.motion_speed_weight > 0 and name in self.motion_speed_groups:
                    speeds = speed_score(samples_group, true_group, lag, weight_group)
                    total = total + self.motion_speed_weight * speeds.mean()
            if self.motion_spread_weight > 0 and name in self.motion_spread_groups:
                spread = spread_energy_score(samples_group, true_group, weight_group)
                total = total + self.motion_spread_weight * spread.mean()
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Teacher-forced generation with scheduled sampling and the weighted sum of the losses
        (stochastic networks: ``motion_samples`` samples of every window)."""
        probability = self.sampling_probability()
        if self.use_pose:
            self.network.observe_translation(batch["translation"])
        batch = repeat_batch(batch, self.motion_samples)
        out = self.generate(batch, teacher_forcing=True, sampling_probability=probability)
        terms = self.losses(out, batch, self.motion_samples)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        batch_size = batch["emotion"].shape[0] // self.motion_samples
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{name}": value for name, value in terms.items()}, batch_size=batch_size)
        self.log("train/sampling_probability", probability, batch_size=batch_size)
        return loss

    # ------------------------------------------------------------------------------------------
    # Evaluation
    # ------------------------------------------------------------------------------------------
    def evaluate(self, out: CueOutput, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Per-sequence metrics ``(B,)`` of free-running cues against the batch's ground truth.

        Uses :mod:`emoface.metrics.functional` (the same definitions as the logged Metrics):
        ``lmd``/``m_lmd``/``f_lmd`` on pose-free landmarks (normalized landmarks times the
        ground-truth head scale: pixels of the head, x and y), ``posed_*`` on the relocated
        landmarks against the real ones in the crop, ``gaze_error`` and ``rotation_error`` in
        degrees, ``translation_error`` in pixels, ``emotion_accuracy`` (0/1) of the collaborative
        classifier on the generated sequence.
        """
        pred, true = self._pose_free(out.normalized_landmarks, batch), self._pose_free(batch["normalized_landmarks"], batch)
        metrics = MF.landmark_distance(pred, true)
        relocated = relocate(out.normalized_landmarks, out.gaze, out.rotation, out.translation, out.scale)
        posed = MF.landmark_distance(relocated.landmarks, batch["landmarks"])
        metrics.update({f"posed_{key}": value for key, value in posed.items()})
        metrics["gaze_error"] = MF.gaze_error(out.gaze, batch["gaze"], batch.get("gaze_confidence"))
        pose = MF.pose_error(out.rotation, batch["rotation"], out.translation, batch["translation"])
        metrics["rotation_error"], metrics["translation_error"] = pose["rotation"], pose["translation"]
        logits = self.classify(out.normalized_landmarks, out.gaze, out.rotation, True, batch["ref_normalized_landmarks"])
        metrics["emotion_accuracy"] = (logits.argmax(-1) == batch["emotion"]).double()
        return metrics

    @staticmethod
    def _pose_free(normalized_landmarks: Tensor, batch: dict[str, Any]) -> Tensor:
        """Normalized landmarks ``(B, T, 68, 3)`` scaled by the ground-truth head scale (pixels)."""
        return normalized_landmarks * batch["scale"][..., None, None]

    def _metrics(self, stage: str) -> nn.ModuleDict:
        return self.val_metrics if stage == "val" else self.test_metrics

    def _evaluation_step(self, batch: dict[str, Any], stage: str) -> CueOutput:
        out = self.generate(batch)
        batch_size = batch["emotion"].shape[0]
        loss = sum(self.weights[name] * value for name, value in self.losses(out, batch).items())
        self.log(f"{stage}/loss", loss, batch_size=batch_size, sync_dist=True)
        metrics = self._metrics(stage)
        metrics["landmarks"].update(self._pose_free(out.normalized_landmarks, batch),
                                    self._pose_free(batch["normalized_landmarks"], batch))  # fmt: skip
        relocated = relocate(out.normalized_landmarks, out.gaze, out.rotation, out.translation, out.scale)
        metrics["posed_landmarks"].update(relocated.landmarks, batch["landmarks"])
        metrics["gaze"].update(out.gaze, batch["gaze"], batch.get("gaze_confidence"))
        metrics["pose"].update(out.rotation, batch["rotation"], out.translation, batch["translation"])
        logits = self.classify(out.normalized_landmarks, out.gaze, out.rotation, True, batch["ref_normalized_landmarks"])
        metrics["emotion"].update(logits.argmax(-1), batch["emotion"])
        euler = matrix_to_euler(out.rotation)
        metrics["motion"].update(euler, out.gaze, batch["euler"], batch["gaze"], batch["emotion"])
        metrics["motion_fd"].update(euler, out.gaze, batch["euler"], batch["gaze"])
        energy = MF.speech_energy(batch["audio"], out.scale.shape[1])
        metrics["motion_energy"].update(euler, batch["euler"], energy)
        return out

    def _log_metrics(self, stage: str) -> None:
        metrics = self._metrics(stage)
        if metrics["gaze"].num_videos == 0:  # nothing was evaluated (e.g. limit_val_batches=0)
            return
        values = dict(metrics["landmarks"].compute())
        values.update({f"posed_{k}": v for k, v in metrics["posed_landmarks"].compute().items()})
        values["gaze_error"] = metrics["gaze"].compute()
        pose = metrics["pose"].compute()
        values["rotation_error"], values["translation_error"] = pose["rotation"], pose["translation"]
        values["emotion_accuracy"] = metrics["emotion"].compute()
        values.update({f"motion/{k}": v for k, v in metrics["motion"].compute().items()})
        if metrics["motion_fd"].real_count >= 2:  # a Gaussian needs two sequences
            values["motion_fd"] = metrics["motion_fd"].compute()
        correlation = metrics["motion_energy"].compute()
        values["motion_energy_corr"], values["motion_energy_corr_real"] = correlation["generated"], correlation["real"]
        for name, value in values.items():
            self.log(f"{stage}/{name}", value.float(), prog_bar=name in ("m_lmd", "emotion_accuracy"))
        if stage == "val":
            self._motion_table = {k: v.cpu().numpy() for k, v in metrics["motion"].per_emotion().items()}
        for metric in metrics.values():
            metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Free-running generation; logs ``val/*`` metrics and keeps a sample for the figure."""
        out = self._evaluation_step(batch, "val")
        if batch_idx == 0:
            self._figure_sample = {
                "pred_landmarks": out.normalized_landmarks[0].detach().cpu().numpy(),
                "true_landmarks": batch["normalized_landmarks"][0].detach().cpu().numpy(),
                "pred_gaze": out.gaze[0].detach().cpu().numpy(),
                "true_gaze": batch["gaze"][0].detach().cpu().numpy(),
                "pred_euler": matrix_to_euler(out.rotation[0]).detach().cpu().numpy(),
                "true_euler": batch["euler"][0].detach().cpu().numpy(),
                "title": f"{batch['clip'][0]} (emotion {EMOTIONS[int(batch['emotion'][0])]})",
            }
            for name, value in (("rotation", out.rotation), ("translation", out.translation), ("scale", out.scale)):
                self._figure_sample[f"pred_{name}"] = value[0].detach().float().cpu().numpy()
                self._figure_sample[f"true_{name}"] = batch[name][0].detach().float().cpu().numpy()
            if "waveform" in batch:
                self._figure_sample["waveform"] = batch["waveform"][0].detach().float().cpu().numpy()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Free-running generation; logs ``test/*`` metrics."""
        self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics (``test/*``)."""
        self._log_metrics("test")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics, a figure of generated vs real cue curves for one clip and one
        of generated vs real motion per emotion (``val/motion``)."""
        self._log_metrics("val")
        sample, self._figure_sample = self._figure_sample, None
        table, self._motion_table = self._motion_table, None
        if sample is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        from emoface.lightning_modules._figures import (
            cue_figure,
            cue_frames,
            log_figure,
            log_image_grid,
            log_video,
            motion_figure,
        )

        def due(every: int) -> bool:
            return every > 0 and self.current_epoch % every == 0

        step, epoch = self.global_step, self.current_epoch
        if due(self.figure_every_n_epochs):
            log_figure(self.trainer, cue_figure(sample), "val/cues", step, epoch)
            if table is not None:
                log_figure(self.trainer, motion_figure(table, EMOTIONS), "val/motion", step, epoch)
        if due(self.figure_every_n_epochs) or due(self.video_every_n_epochs):
            grid, video = cue_frames(sample)
            if due(self.figure_every_n_epochs):
                log_image_grid(self.trainer, grid, "val/cue_frames", step, epoch)
            if due(self.video_every_n_epochs):
                log_video(self.trainer, video, "val/cue_video", step, epoch, audio=sample.get("waveform"))

    # ------------------------------------------------------------------------------------------
    # Predict: per-clip cue files for stage 2
    # ------------------------------------------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[str]:
        """Generate free-running cues and relocated landmarks; collected per clip, written at epoch end.

        Returns:
            the clip ids of the batch.
        """
        out = self.generate(batch)  # stochastic networks: seeded by motion_seed, the clip and the start
        relocated = relocate(out.normalized_landmarks, out.gaze, out.rotation, out.translation, out.scale)
        euler = matrix_to_euler(out.rotation)
        for i, clip in enumerate(batch["clip"]):
            self._predictions[clip].append(
                {
                    "motion_seed": self.motion_seed if self.stochastic else -1,
                    "start": int(batch["start"][i]),
                    "emotion": int(batch["emotion"][i]),
                    "level": int(batch["level"][i]),
                    "normalized_landmarks": out.normalized_landmarks[i].float().cpu().numpy(),
                    "gaze": out.gaze[i].float().cpu().numpy(),
                    "rotation": out.rotation[i].float().cpu().numpy(),
                    "euler": euler[i].float().cpu().numpy(),
                    "translation": out.translation[i].float().cpu().numpy(),
                    "scale": out.scale[i].float().cpu().numpy(),
                    "relocated": relocated.points[i].float().cpu().numpy(),
                    "gaze_vectors": relocated.gaze_vectors[i].float().cpu().numpy(),
                }
            )
        return list(batch["clip"])

    def prediction_dir(self) -> Path:
        """Directory ``predict`` writes to."""
        if self.output_dir is not None:
            return Path(self.output_dir)
        return Path(self.trainer.default_root_dir) / "s2l_predictions"

    def on_predict_epoch_end(self) -> None:
        """Write one ``<output_dir>/<clip>.npz`` per clip (docs/data_format.md, "Stage-1 predictions")."""
        from emoface.io.arrays import save_npz

        root = self.prediction_dir()
        # The crop side the pixel arrays are in, so that stage 2 can use them at another size.
        size = getattr(getattr(self.trainer, "datamodule", None), "size", None)
        for clip, windows in self._predictions.items():
            arrays = stitch_windows(clip, windows)
            if size is not None:
                arrays["size"] = np.int64(size)
            save_npz(root / f"{clip}.npz", arrays)
        self._predictions = defaultdict(list)

    # ------------------------------------------------------------------------------------------
    # Optimisation
    # ------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """AdamW (or the configured optimizer) and the configured scheduler, stepped per epoch."""
        params = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(params)
        else:
            optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}


SEQUENCE_KEYS = (
    "normalized_landmarks", "gaze", "rotation", "euler", "translation", "scale", "relocated", "gaze_vectors",
)  # fmt: skip
"""Per-frame arrays of a stage-1 prediction file."""


def stitch_windows(clip: str, windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Join the generated windows of one clip, in frame order, into the arrays of its file.

    Windows are placed at their ``start``; where windows overlap, the later window's frames win.
    Frames no window covers (a gap) are an error.

    Returns:
        the arrays of ``<clip>.npz`` (see docs/data_format.md).
    """
    windows = sorted(windows, key=lambda w: w["start"])
    length = max(w["start"] + len(w["scale"]) for w in windows)
    covered = np.zeros(length, dtype=bool)
    arrays: dict[str, Any] = {}
    for key in SEQUENCE_KEYS:
        first = windows[0][key]
        arrays[key] = np.zeros((length, *first.shape[1:]), dtype=np.float32)
    for window in windows:
        start, frames = window["start"], len(window["scale"])
        covered[start : start + frames] = True
        for key in SEQUENCE_KEYS:
            arrays[key][start : start + frames] = window[key]
    first_frame = windows[0]["start"]
    if not covered[first_frame:].all():
        raise RuntimeError(f"predictions of clip {clip!r} leave frames uncovered between windows")
    arrays = {key: value[first_frame:] for key, value in arrays.items()}
    arrays.update(
        {
            "clip": np.str_(clip),
            "start": np.int64(first_frame),
            "emotion": np.str_(EMOTIONS[windows[0]["emotion"]]),
            "level": np.int64(windows[0]["level"]),
            "fps": np.int64(25),
            "motion_seed": np.int64(windows[0].get("motion_seed", -1)),
        }
    )
    return arrays


__all__ = [
    "BATCH_FIELDS",
    "SpeechToLandmarks",
    "energy_score",
    "increment_energy_score",
    "MOTION_GROUPS",
    "motion_vectors",
    "reference_pose",
    "repeat_batch",
    "speed_score",
    "spread_energy_score",
    "stitch_windows",
    "window_seeds",
]
