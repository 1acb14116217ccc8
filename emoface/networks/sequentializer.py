"""Landmark sequentializer: auto-regressive generation of the three cues, frame by frame.

Choice: a GRU. Step ``n`` sees the previous step's cues (as :func:`~emoface.networks.cues.cue_features`),
the audio code ``a_n`` and the emotion / identity codes. A GRU keeps one small state per
sequence, so free-running generation costs O(1) per frame (a causal transformer re-attends over
the whole prefix, O(n) per frame, and needs a KV cache to match), it trains well on the short
windows stage 1 uses, and it runs fast on CPU, where the project's tests and benchmark run. The
same ``nn.GRU`` serves the teacher-forced path (one call over the whole window) and the
step-by-step path (scheduled sampling, free running), so both share weights exactly.

Teacher forcing only for the cues the inputs determine. Normalized landmarks follow the audio
(lips), the emotion and level (expression) and the reference (identity), so feeding the real
previous landmarks in training teaches the same mapping free running uses. Head pose and gaze do
not: beyond their emotion-dependent statistics (and the speech nods) they wander (head motion,
fixations and saccades) in ways no input predicts. Teacher-forced on them, the network learns
"continue the previous pose/gaze", which wins the training loss, but free running it then
continues its own first guess and invents motion uncorrelated with the real one, drifting further
the longer it is trained (its pose error ends above the "predict the training mean" baseline).
``free_running_cues`` (default: gaze and pose) are therefore always fed back from the network's
own previous output, in training too, so each frame's pose and gaze are trained exactly as they
are generated: the L1 losses then make them the best prediction from the inputs (emotion, level,
audio, identity and the generated history), which is what a deterministic generator should give.

Stochastic motion (``noise_dim > 0``). The best deterministic prediction of motion the inputs do
not determine is its conditional mean (median under L1), a damped, nearly still head and frozen
eyes. With ``noise_dim > 0`` the GRU also reads noise: one Gaussian vector per sequence (into the
initial state: a clip's own posture and style) and one per frame (into each step's input: the
fixations, saccades and turns the audio does not fix). The per-frame noise is a stationary AR(1)
process with coefficient :data:`NOISE_SMOOTHING` (slow variation the GRU need not learn to
integrate in a few hundred steps; measured against half-white noise it gave a lower M-LMD and
the same motion calibration on mini-MEAD), so samples are temporally coherent trajectories.
The system trains pose and gaze with a distribution-level objective on these samples (the energy score,
:func:`emoface.lightning_modules.speech_to_landmarks.energy_score`). ``noise_dim = 0`` is the
deterministic generator (the ablation, and what checkpoints made before it load as).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from emoface.geometry.landmarks import NUM_LANDMARKS
from emoface.geometry.rotations import rotation_6d_to_matrix
from emoface.networks.cues import CUE_FEATURES, CUE_SLICES, GazeBins, cue_features, identity_6d, xavier_small_

FEEDBACK_CUES = ("landmarks", "gaze", "pose")
"""Cue names ``free_running_cues`` accepts."""
NOISE_SMOOTHING = 0.9
"""AR(1) coefficient of the per-frame noise (time constant ~10 frames, 0.4 s)."""


class Reference(NamedTuple):
    """The reference face a sequence is generated from.

    Attributes:
        normalized_landmarks: ``(B, 68, 3)`` canonical frame.
        translation: ``(B, 3)`` head translation of the reference (pixels).
        scale: ``(B,)`` head scale of the reference (pixels per canonical unit).
    """

    normalized_landmarks: Tensor
    translation: Tensor
    scale: Tensor


class CueOutput(NamedTuple):
    """Generated cues of a window.

    Attributes:
        normalized_landmarks: ``(B, T, 68, 3)`` canonical frame.
        gaze: ``(B, T, 2, 2)`` per-eye (yaw, pitch) degrees (expected value over the bins).
        gaze_logits: ``(B, T, 2, 2, bins)``.
        gaze_offsets: ``(B, T, 2, 2, bins)`` raw within-bin offsets.
        rotation: ``(B, T, 3, 3)``.
        rotation_6d: ``(B, T, 6)`` raw 6D output (before Gram-Schmidt).
        translation: ``(B, T, 3)`` pixels.
        scale: ``(B, T)``.
    """

    normalized_landmarks: Tensor
    gaze: Tensor
    gaze_logits: Tensor
    gaze_offsets: Tensor
    rotation: Tensor
    rotation_6d: Tensor
    translation: Tensor
    scale: Tensor


class CueHeads(nn.Module):
    """Heads mapping a step's hidden vector to the three cues.

    * landmarks: offsets ``(68, 3)`` from the reference's normalized landmarks;
    * gaze: per eye and angle, ``bins`` logits and ``bins`` within-bin offsets (:class:`GazeBins`);
    * pose: 6D rotation (around identity), translation around the training set's mean head
      placement in the crop (in reference head units; see :meth:`observe_translation`) and a
      log-scale ratio to the reference.

    Why not around the reference's own translation: crops are made per clip (centred on the clip's
    median face box), so where the head sits in a crop is a property of the crop, not of the
    reference frame, whose own head motion (one frame of a moving head) would otherwise be copied
    into every frame generated from it, a bias shared by all of an actor's clips.

    Args:
        in_dim: hidden size fed to the heads.
        hidden: width of the heads' hidden layer.
        gaze_bins: bins per gaze angle.
        gaze_max_angle: half range of the gaze bins (degrees).
    """

    def __init__(self, in_dim: int, hidden: int = 256, gaze_bins: int = 12, gaze_max_angle: float = 30.0) -> None:
        super().__init__()
        self.gaze_bins = GazeBins(gaze_bins, gaze_max_angle)
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.landmarks = nn.Linear(hidden, NUM_LANDMARKS * 3)
        self.gaze = nn.Linear(hidden, 2 * 2 * 2 * gaze_bins)
        self.pose = nn.Linear(hidden, 6 + 3 + 1)
        for layer in (self.landmarks, self.pose):
            xavier_small_(layer)
        self.register_buffer("translation_mean", torch.zeros(3))
        self.register_buffer("translation_count", torch.zeros(()))

    @torch.no_grad()
    def observe_translation(self, translation: Tensor) -> None:
        """Add real head translations ``(..., 3)`` (crop pixels) to the running mean placement."""
        values = translation.detach().reshape(-1, 3).to(self.translation_mean)
        count = self.translation_count + values.shape[0]
        self.translation_mean += (values.mean(0) - self.translation_mean) * (values.shape[0] / count)
        self.translation_count.copy_(count)

    def placement(self, reference: Reference) -> Tensor:
        """``(B, 3)`` pixels the translation is predicted around: the mean training placement once
        :meth:`observe_translation` has seen data, else (an untrained network) the reference's."""
        if self.translation_count <= 0:
            return reference.translation
        return self.translation_mean.to(reference.translation.dtype).expand_as(reference.translation)

    def forward(self, features: Tensor, reference: Reference) -> CueOutput:
        """``features (B, T, in_dim)`` -> :class:`CueOutput` of T frames."""
        batch, frames = features.shape[:2]
        h = self.trunk(features)
        offsets = self.landmarks(h).reshape(batch, frames, NUM_LANDMARKS, 3) / 4.0
        landmarks = reference.normalized_landmarks.unsqueeze(1) + offsets  # (B, T, 68, 3)
        gaze_raw = self.gaze(h).reshape(batch, frames, 2, 2, 2, self.gaze_bins.bins)
        logits, gaze_offsets = gaze_raw[..., 0, :], gaze_raw[..., 1, :]
        gaze = self.gaze_bins.angles(logits, gaze_offsets)  # (B, T, 2, 2)
        pose = self.pose(h)
        rot6d = pose[..., :6] + identity_6d(pose)
        rotation = rotation_6d_to_matrix(rot6d)
        ref_scale = reference.scale[:, None]
        translation = self.placement(reference).unsqueeze(1) + pose[..., 6:9] * ref_scale.unsqueeze(-1)
        scale = ref_scale * torch.exp(pose[..., 9])
        return CueOutput(landmarks, gaze, logits, gaze_offsets, rotation, rot6d, translation, scale)


class LandmarkSequentializer(nn.Module):
    """Auto-regressive GRU over frames generating landmarks, gaze and pose.

    Args:
        audio_dim: size of the per-frame audio code ``a_n``.
        condition_dim: size of the emotion code plus the identity code.
        hidden: GRU width.
        cue_dim: size the fed-back previous cues are projected to.
        gaze_bins: bins per gaze angle.
        gaze_max_angle: half range of the gaze bins (degrees).
        autoregressive: when False, the previous-cue input is dropped and the whole window is
            decoded in one pass (no step depends on a generated output): the "parallel decoding"
            ablation.
        free_running_cues: cues (``landmarks``, ``gaze``, ``pose``) never teacher-forced: in
            training too, step ``n`` is fed the network's own (detached) cues of step ``n - 1``
            for them (module docstring). Empty: classic teacher forcing with scheduled sampling
            on every cue.
        noise_dim: size of the sequence noise and of each frame's noise (0: deterministic).
    """

    def __init__(
        self,
        audio_dim: int = 128,
        condition_dim: int = 128,
        hidden: int = 256,
        cue_dim: int = 64,
        gaze_bins: int = 12,
        gaze_max_angle: float = 30.0,
        autoregressive: bool = True,
        free_running_cues: Sequence[str] = ("gaze", "pose"),
        noise_dim: int = 0,
    ) -> None:
        super().__init__()
        if noise_dim < 0:
            raise ValueError(f"noise_dim must be >= 0, got {noise_dim}")
        self.noise_dim = noise_dim
        unknown = set(free_running_cues) - set(FEEDBACK_CUES)
        if unknown:
            raise ValueError(f"free_running_cues must be among {FEEDBACK_CUES}, got {sorted(unknown)}")
        self.autoregressive = autoregressive
        self.free_running_cues = tuple(cue for cue in FEEDBACK_CUES if cue in free_running_cues)
        own = torch.zeros(CUE_FEATURES, dtype=torch.bool)
        for cue in self.free_running_cues:
            own[CUE_SLICES[cue]] = True
        self.register_buffer("own_feedback", own, persistent=False)
        self.hidden = hidden
        self.cue_proj = nn.Sequential(nn.Linear(CUE_FEATURES, cue_dim), nn.GELU())
        in_dim = cue_dim + audio_dim + condition_dim + noise_dim
        self.input = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.init_state = nn.Linear(condition_dim + noise_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.heads = CueHeads(2 * hidden, hidden, gaze_bins, gaze_max_angle)

    def _step_inputs(self, previous: Tensor, audio: Tensor, condition: Tensor, noise: Tensor | None) -> Tensor:
        """Project ``previous (B, t, CUE_FEATURES)``, ``audio (B, t, A)``, ``condition (B, C)`` and
        ``noise (B, t, noise_dim)`` (stochastic only) -> ``(B, t, H)``."""
        if not self.autoregressive:
            previous = torch.zeros_like(previous)
        cond = condition.unsqueeze(1).expand(-1, audio.shape[1], -1)
        parts = [self.cue_proj(previous), audio, cond] + ([noise] if noise is not None else [])
        return self.input(torch.cat(parts, -1))

    def check_noise(self, noise: Tensor | None, batch: int, frames: int, like: Tensor) -> Tensor | None:
        """The ``(B, T + 1, noise_dim)`` noise of a window (row 0: the sequence's, rows 1..T: the
        frames'), drawn from the global RNG when ``None``; ``None`` for a deterministic network."""
        if self.noise_dim == 0:
            return None
        shape = (batch, frames + 1, self.noise_dim)
        if noise is None:
            return torch.randn(shape, dtype=like.dtype, device=like.device)
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must be (B, T + 1, noise_dim) = {shape}, got {tuple(noise.shape)}")
        return noise.to(dtype=like.dtype, device=like.device)

    def frame_noise(self, noise: Tensor) -> Tensor:
        """Per-frame noise ``(B, T, noise_dim)`` from standard normal ``noise (B, T + 1, noise_dim)``:
        rows 1..T made slow by a stationary AR(1) (unit variance, coefficient :data:`NOISE_SMOOTHING`)."""
        white = noise[:, 1:]
        if white.shape[1] == 0:
            return white
        a, b = NOISE_SMOOTHING, (1.0 - NOISE_SMOOTHING**2) ** 0.5
        state = white[:, 0]
        smooth = [state]
        for t in range(1, white.shape[1]):
            state = a * state + b * white[:, t]
            smooth.append(state)
        return torch.stack(smooth, 1)

    def forward(
        self,
        audio: Tensor,
        condition: Tensor,
        reference: Reference,
        teacher: Tensor | None = None,
        sampling_probability: float = 0.0,
        noise: Tensor | None = None,
    ) -> CueOutput:
        """Generate the cues of a window.

        Args:
            audio: ``(B, T, A)`` per-frame audio codes.
            condition: ``(B, C)`` emotion + identity code.
            reference: the reference face.
            teacher: ``(B, T, CUE_FEATURES)`` ground-truth cues for teacher forcing (step ``n`` is
                fed ``teacher[:, n - 1]``); ``None`` generates free-running (each step is fed the
                previous step's own output).
            sampling_probability: scheduled sampling: with teacher forcing, the probability, per
                sequence and step, of feeding the model's own previous output instead of the
                ground truth (Bengio et al. 2015). Own outputs fed back are detached. The
                ``free_running_cues`` are always the network's own, whatever the probability.
            noise: ``(B, T + 1, noise_dim)`` standard normal noise (stochastic networks; drawn
                from the global RNG when ``None``; see :meth:`check_noise`).

        Returns:
            :class:`CueOutput` with ``T`` frames.
        """
        batch, frames = audio.shape[:2]
        start = torch.zeros(batch, 1, CUE_FEATURES, dtype=audio.dtype, device=audio.device)
        noise = self.check_noise(noise, batch, frames, audio)
        initial = condition if noise is None else torch.cat([condition, noise[:, 0]], -1)
        frame_noise = None if noise is None else self.frame_noise(noise)  # (B, T, noise_dim)
        state = torch.tanh(self.init_state(initial)).unsqueeze(0).contiguous()  # (1, B, H)
        forced_only = not self.free_running_cues and sampling_probability <= 0.0
        parallel = not self.autoregressive or (teacher is not None and forced_only)
        if parallel:
            previous = start if teacher is None else torch.cat([start, teacher[:, :-1]], 1)
            previous = previous.expand(batch, frames, CUE_FEATURES) if teacher is None else previous
            x = self._step_inputs(previous, audio, condition, frame_noise)
            hidden, _ = self.gru(x, state)
            return self.heads(torch.cat([hidden, x], -1), reference)

        outputs: list[CueOutput] = []
        previous = start
        for n in range(frames):
            if teacher is not None and n > 0:
                use_own = torch.rand(batch, 1, 1, device=audio.device) < sampling_probability
                use_own = use_own | self.own_feedback
                previous = torch.where(use_own, previous.detach(), teacher[:, n - 1 : n])
            step_noise = None if frame_noise is None else frame_noise[:, n : n + 1]
            x = self._step_inputs(previous, audio[:, n : n + 1], condition, step_noise)
            hidden, state = self.gru(x, state)
            out = self.heads(torch.cat([hidden, x], -1), reference)
            outputs.append(out)
            previous = cue_features(
                out.normalized_landmarks,
                out.gaze,
                out.rotation,
                out.translation,
                out.scale,
                reference.normalized_landmarks,
                reference.translation,
                reference.scale,
            )
            if teacher is None:
                previous = previous.detach()
        return CueOutput(*(torch.cat(parts, 1) for parts in zip(*outputs)))
