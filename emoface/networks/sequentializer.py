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
eyes. With ``noise_dim > 0`` gaze and pose come from a :class:`MotionBranch` beside the landmark
stream: a second GRU that reads the landmark stream's features of each step (detached), the
previous step's gaze and pose, audio codes of its own (``motion_audio``: the prosody the head
moves with) and noise: one Gaussian vector per sequence (into its initial state: a clip's own
posture and style) and one per frame (the fixations, saccades and turns the audio does not fix).
The per-frame noise is a stationary AR(1) process with coefficient :data:`NOISE_SMOOTHING` (slow
variation the GRU need not learn to integrate in a few hundred steps; measured against
half-white noise it gave a lower M-LMD and the same motion calibration on mini-MEAD), so samples
are temporally coherent trajectories. The system trains pose and gaze with a distribution-level
objective on these samples (the energy score,
:func:`emoface.lightning_modules.speech_to_landmarks.energy_score`). The landmark stream is fed
back its previous landmarks only, so the lips do not depend on the motion sample (the motion
follows the face's stream, not the other way round).

Why a branch and not noise into the one GRU: the landmark stream then reads no noise and gets no
gradient from the motion scores, so the lips are learned as in the deterministic generator. No
gradient at all: the branch's initial state reads the emotion and identity codes detached. When it
read them attached, the motion scores (a large share of the loss) also trained the reference and
emotion encoders the lips are generated from, and on unseen actors the sampled model's mouth kept
a lasting offset: M-LMD 1.1-1.5 times the deterministic model's on a 24-actor mini-MEAD (seeds 0-2,
benchmarks/s2l_learning.py); read detached, 0.82 times on seed 0 (figures of all seeds there).
Sharing one GRU, the motion scores (which outweigh the landmark L1 in the loss) competed with the
lips for its state: on mini-MEAD the sampled model's M-LMD came out 0.95-1.88 times the
deterministic model's over four training seeds, and the eyes of one run wandered apart (left /
right yaw correlation -0.26), damping the gaze seen. Why audio codes of its own: reading only the
landmark stream's detached features, which are shaped for the lips, the head followed the voice
less (head-speed / speech-energy correlation 0.107 / 0.150 against 0.213 / 0.196 with its own
codes, seeds 2 / 3). Why the landmark stream is not fed the sampled gaze and pose: fed them, its
lips depended on the motion sample, and M-LMD (two training runs pooled) was 1.14 times the
deterministic model's on seed 2; fed its landmarks only, 1.01 times, and the head-speed /
speech-energy correlation rose from 0.163 / 0.179 to 0.209 / 0.199 (seeds 0 / 2).
``noise_dim = 0`` is the deterministic generator (the ablation, and what checkpoints made before
it load as).
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


class MotionCues(NamedTuple):
    """Generated gaze and pose of a window (the :class:`CueOutput` fields after the landmarks)."""

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
        landmarks: whether these heads predict the landmarks (:meth:`predict_landmarks`).
        motion: whether they predict gaze and pose (:meth:`predict_motion`). A stochastic
            sequentializer has landmark-only heads and motion-only heads (in its
            :class:`MotionBranch`); a head without a use would hold parameters that get no gradient.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int = 256,
        gaze_bins: int = 12,
        gaze_max_angle: float = 30.0,
        landmarks: bool = True,
        motion: bool = True,
    ) -> None:
        super().__init__()
        if not (landmarks or motion):
            raise ValueError("CueHeads needs landmarks or motion (or both)")
        self.gaze_bins = GazeBins(gaze_bins, gaze_max_angle)
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        if landmarks:
            self.landmarks = nn.Linear(hidden, NUM_LANDMARKS * 3)
        if motion:
            self.gaze = nn.Linear(hidden, 2 * 2 * 2 * gaze_bins)
            self.pose = nn.Linear(hidden, 6 + 3 + 1)
            self.register_buffer("translation_mean", torch.zeros(3))
            self.register_buffer("translation_count", torch.zeros(()))
        for name in ("landmarks", "pose"):  # after creating every layer: the deterministic init of old
            if hasattr(self, name):
                xavier_small_(getattr(self, name))

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
        """``features (B, T, in_dim)`` -> :class:`CueOutput` of T frames (heads with both cues)."""
        h = self.trunk(features)
        return CueOutput(self.predict_landmarks(h, reference), *self.predict_motion(h, reference))

    def predict_landmarks(self, h: Tensor, reference: Reference) -> Tensor:
        """Trunk output ``h (B, T, hidden)`` -> normalized landmarks ``(B, T, 68, 3)``."""
        offsets = self.landmarks(h).reshape(*h.shape[:2], NUM_LANDMARKS, 3) / 4.0
        return reference.normalized_landmarks.unsqueeze(1) + offsets

    def predict_motion(self, h: Tensor, reference: Reference) -> MotionCues:
        """Trunk output ``h (B, T, hidden)`` -> gaze and pose of T frames."""
        batch, frames = h.shape[:2]
        gaze_raw = self.gaze(h).reshape(batch, frames, 2, 2, 2, self.gaze_bins.bins)
        logits, gaze_offsets = gaze_raw[..., 0, :], gaze_raw[..., 1, :]
        gaze = self.gaze_bins.angles(logits, gaze_offsets)  # (B, T, 2, 2)
        pose = self.pose(h)
        rot6d = pose[..., :6] + identity_6d(pose)
        rotation = rotation_6d_to_matrix(rot6d)
        ref_scale = reference.scale[:, None]
        translation = self.placement(reference).unsqueeze(1) + pose[..., 6:9] * ref_scale.unsqueeze(-1)
        scale = ref_scale * torch.exp(pose[..., 9])
        return MotionCues(gaze, logits, gaze_offsets, rotation, rot6d, translation, scale)


class MotionBranch(nn.Module):
    """The stochastic generator of gaze and head pose beside the landmark stream (module docstring).

    Each step a GRU of its own reads the landmark stream's features of that step (its hidden
    vector and step input: previous landmarks, audio, emotion and identity codes; detached, so
    the motion scores do not train the lips), the previous step's gaze and pose, the step's
    motion audio code and the step's noise; heads of its own give gaze and pose. Its initial
    state reads the emotion and identity codes detached too (module docstring: why).

    Args:
        hidden: width of the landmark stream's GRU, and of this one.
        audio_dim: size of the motion audio code.
        condition_dim: size of the emotion + identity code (read by the initial state).
        noise_dim: size of the sequence noise and of each frame's noise.
        gaze_bins: bins per gaze angle.
        gaze_max_angle: half range of the gaze bins (degrees).
    """

    def __init__(
        self, hidden: int, audio_dim: int, condition_dim: int, noise_dim: int, gaze_bins: int, gaze_max_angle: float
    ) -> None:
        super().__init__()
        motion_features = CUE_FEATURES - CUE_SLICES["gaze"].start
        self.input = nn.Sequential(nn.Linear(2 * hidden + audio_dim + noise_dim + motion_features, hidden), nn.GELU())
        self.init_state = nn.Linear(condition_dim + noise_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.heads = CueHeads(2 * hidden, hidden, gaze_bins, gaze_max_angle, landmarks=False)

    def initial_state(self, condition: Tensor, noise: Tensor) -> Tensor:
        """``(1, B, H)`` state from ``condition (B, C)`` (read detached: the motion scores must not
        reshape the emotion and identity codes the lips are generated from) and the sequence's
        noise ``(B, noise_dim)``."""
        return torch.tanh(self.init_state(torch.cat([condition.detach(), noise], -1))).unsqueeze(0).contiguous()

    def forward(
        self, features: Tensor, previous: Tensor, audio: Tensor, noise: Tensor, state: Tensor, reference: Reference
    ) -> tuple[MotionCues, Tensor]:
        """Gaze and pose of ``t`` frames.

        Args:
            features: ``(B, t, 2H)`` the landmark stream's hidden vectors and step inputs.
            previous: ``(B, t, CUE_FEATURES)`` the cues fed to the step (this branch reads their
                gaze and pose).
            audio: ``(B, t, A)`` motion audio codes.
            noise: ``(B, t, noise_dim)`` per-frame noise.
            state: ``(1, B, H)`` this GRU's state before the ``t`` frames.
            reference: the reference face.

        Returns:
            the cues and this GRU's state after the ``t`` frames.
        """
        own = previous[..., CUE_SLICES["gaze"].start :].detach()
        x = self.input(torch.cat([features.detach(), own, audio, noise], -1))
        hidden, state = self.gru(x, state)
        return self.heads.predict_motion(self.heads.trunk(torch.cat([hidden, x], -1)), reference), state


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
        noise_dim: size of the sequence noise and of each frame's noise (0: deterministic; > 0:
            gaze and pose come from a :class:`MotionBranch`, which reads ``motion_audio``).
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
        # Stochastic: the landmark stream is fed back its landmarks only (the lips do not depend
        # on the motion sample); the motion branch reads the fed-back gaze and pose.
        stream = torch.ones(CUE_FEATURES)
        if noise_dim:
            stream[CUE_SLICES["landmarks"].stop :] = 0.0
        self.register_buffer("stream_feedback", stream, persistent=False)
        self.hidden = hidden
        self.cue_proj = nn.Sequential(nn.Linear(CUE_FEATURES, cue_dim), nn.GELU())
        self.input = nn.Sequential(nn.Linear(cue_dim + audio_dim + condition_dim, hidden), nn.GELU())
        self.init_state = nn.Linear(condition_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.heads = CueHeads(2 * hidden, hidden, gaze_bins, gaze_max_angle, motion=noise_dim == 0)
        self.motion = (
            MotionBranch(hidden, audio_dim, condition_dim, noise_dim, gaze_bins, gaze_max_angle) if noise_dim else None
        )

    @property
    def motion_heads(self) -> CueHeads:
        """The heads that predict gaze and pose (the motion branch's when stochastic)."""
        return self.heads if self.motion is None else self.motion.heads

    def _step_inputs(self, previous: Tensor, audio: Tensor, condition: Tensor) -> Tensor:
        """Project ``previous (B, t, CUE_FEATURES)``, ``audio (B, t, A)`` and ``condition (B, C)`` -> ``(B, t, H)``."""
        cond = condition.unsqueeze(1).expand(-1, audio.shape[1], -1)
        return self.input(torch.cat([self.cue_proj(previous * self.stream_feedback), audio, cond], -1))

    def _cues(
        self,
        hidden: Tensor,
        x: Tensor,
        previous: Tensor,
        reference: Reference,
        motion: tuple[Tensor, Tensor, Tensor] | None,
    ) -> tuple[CueOutput, Tensor | None]:
        """Cues of ``t`` frames from the landmark stream's ``hidden`` and step inputs ``x`` ``(B, t, H)``
        and the cues fed to the step, ``previous (B, t, CUE_FEATURES)``; stochastic: ``motion`` is
        the motion branch's ``(audio (B, t, A), noise (B, t, N), state)``, and its state after the
        frames is returned (else ``None``)."""
        features = torch.cat([hidden, x], -1)
        if motion is None:
            return self.heads(features, reference), None
        landmarks = self.heads.predict_landmarks(self.heads.trunk(features), reference)
        cues, state = self.motion(features, previous, *motion, reference)
        return CueOutput(landmarks, *cues), state

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

    def check_motion_audio(self, motion_audio: Tensor | None, audio: Tensor) -> Tensor:
        """The motion branch's audio codes, checked against the landmark stream's ``audio (B, T, A)``."""
        if motion_audio is None or motion_audio.shape != audio.shape:
            got = None if motion_audio is None else tuple(motion_audio.shape)
            raise ValueError(f"a stochastic sequentializer needs motion_audio of the audio codes' shape "
                             f"{tuple(audio.shape)}, got {got}")  # fmt: skip
        return motion_audio

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
        motion_audio: Tensor | None = None,
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
            motion_audio: ``(B, T, A)`` the motion branch's audio codes (stochastic networks only).

        Returns:
            :class:`CueOutput` with ``T`` frames.
        """
        batch, frames = audio.shape[:2]
        start = torch.zeros(batch, 1, CUE_FEATURES, dtype=audio.dtype, device=audio.device)
        noise = self.check_noise(noise, batch, frames, audio)
        state = torch.tanh(self.init_state(condition)).unsqueeze(0).contiguous()  # (1, B, H)
        frame_noise, motion_state = None, None
        if noise is not None:
            motion_audio = self.check_motion_audio(motion_audio, audio)
            frame_noise = self.frame_noise(noise)  # (B, T, noise_dim)
            motion_state = self.motion.initial_state(condition, noise[:, 0])
        forced_only = not self.free_running_cues and sampling_probability <= 0.0
        parallel = not self.autoregressive or (teacher is not None and forced_only)
        if parallel:
            previous = start if teacher is None else torch.cat([start, teacher[:, :-1]], 1)
            previous = previous.expand(batch, frames, CUE_FEATURES) if teacher is None else previous
            if not self.autoregressive:  # the ablation: no step is fed any previous cue (both streams)
                previous = torch.zeros_like(previous)
            x = self._step_inputs(previous, audio, condition)
            hidden, _ = self.gru(x, state)
            motion = None if noise is None else (motion_audio, frame_noise, motion_state)
            return self._cues(hidden, x, previous, reference, motion)[0]

        outputs: list[CueOutput] = []
        previous = start
        for n in range(frames):
            if teacher is not None and n > 0:
                use_own = torch.rand(batch, 1, 1, device=audio.device) < sampling_probability
                use_own = use_own | self.own_feedback
                previous = torch.where(use_own, previous.detach(), teacher[:, n - 1 : n])
            x = self._step_inputs(previous, audio[:, n : n + 1], condition)
            hidden, state = self.gru(x, state)
            step = slice(n, n + 1)
            motion = None if noise is None else (motion_audio[:, step], frame_noise[:, step], motion_state)
            out, motion_state = self._cues(hidden, x, previous, reference, motion)
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
