"""The stage-1 generator: audio + emotion + reference face -> landmarks, gaze and head pose."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from emoface.networks.audio import AudioEncoder
from emoface.networks.conditioning import EmotionEmbedding, ReferenceEncoder
from emoface.networks.cues import GazeBins
from emoface.networks.sequentializer import CueOutput, LandmarkSequentializer, Reference


class SpeechToLandmarksNet(nn.Module):
    """Audio encoder, emotion embedding, reference encoder and landmark sequentializer together.

    Args:
        audio_features: columns per audio row (39).
        audio_context: audio rows of context on each side of a frame's own 4 rows.
        audio_dim: size of ``a_n``.
        emotion_dim: size of the emotion (+ level) code.
        identity_dim: size of the reference (identity) code.
        hidden: sequentializer width.
        gaze_bins: bins per gaze angle (yaw and pitch each).
        gaze_max_angle: half range of the gaze bins, degrees.
        autoregressive: feed each step's cues to the next (False: parallel decoding ablation).
        free_running_cues: cues never teacher-forced, fed back from the network's own previous
            output in training too (default gaze and pose, which the inputs do not determine;
            see :mod:`emoface.networks.sequentializer`).
        dropout: dropout on the audio code.
        noise_dim: stochastic motion: size of the sequence and per-frame noise the sequentializer's
            motion branch reads, with audio codes of its own (a second audio encoder); 0: the
            deterministic generator, the ablation and the default of checkpoints made before
            stochastic motion (see :mod:`emoface.networks.sequentializer`).
    """

    def __init__(
        self,
        audio_features: int = 39,
        audio_context: int = 8,
        audio_dim: int = 128,
        emotion_dim: int = 64,
        identity_dim: int = 64,
        hidden: int = 256,
        gaze_bins: int = 12,
        gaze_max_angle: float = 30.0,
        autoregressive: bool = True,
        free_running_cues: Sequence[str] = ("gaze", "pose"),
        dropout: float = 0.0,
        noise_dim: int = 0,
    ) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(audio_features, audio_context, out_dim=audio_dim, dropout=dropout)
        self.emotion_embedding = EmotionEmbedding(emotion_dim)
        self.reference_encoder = ReferenceEncoder(identity_dim)
        self.sequentializer = LandmarkSequentializer(
            audio_dim=audio_dim,
            condition_dim=emotion_dim + identity_dim,
            hidden=hidden,
            gaze_bins=gaze_bins,
            gaze_max_angle=gaze_max_angle,
            autoregressive=autoregressive,
            free_running_cues=free_running_cues,
            noise_dim=noise_dim,
        )
        # Stochastic: the motion branch's own audio codes (the prosody the head moves with),
        # learned from the motion scores without reshaping the lips' codes.
        self.motion_audio_encoder = (
            AudioEncoder(audio_features, audio_context, out_dim=audio_dim, dropout=dropout) if noise_dim else None
        )

    def observe_translation(self, translation: Tensor) -> None:
        """Training: real head translations ``(..., 3)`` (crop pixels) for the mean placement the
        translation head predicts around (:class:`~emoface.networks.sequentializer.CueHeads`)."""
        self.sequentializer.motion_heads.observe_translation(translation)

    @property
    def noise_dim(self) -> int:
        """Noise size of the sequentializer (0: deterministic)."""
        return self.sequentializer.noise_dim

    @property
    def stochastic(self) -> bool:
        """Whether pose and gaze are sampled (``noise_dim > 0``)."""
        return self.sequentializer.noise_dim > 0

    def seeded_noise(self, seeds: Sequence[int], frames: int, like: Tensor) -> Tensor | None:
        """Noise ``(B, T + 1, noise_dim)`` of ``B`` windows, each from its own seed (CPU generators,
        so a window's sample is the same on any device, batch composition or rank); ``None`` when
        deterministic."""
        if not self.stochastic:
            return None
        noise = [torch.randn(frames + 1, self.noise_dim, generator=torch.Generator().manual_seed(int(seed)))
                 for seed in seeds]  # fmt: skip
        return torch.stack(noise).to(dtype=like.dtype, device=like.device)

    @property
    def gaze_bins(self) -> GazeBins:
        """The discretization of the gaze head."""
        return self.sequentializer.motion_heads.gaze_bins

    def forward(
        self,
        audio: Tensor,
        emotion: Tensor,
        level: Tensor,
        reference: Reference,
        teacher: Tensor | None = None,
        sampling_probability: float = 0.0,
        noise: Tensor | None = None,
    ) -> CueOutput:
        """Generate the cues of a window.

        Args:
            audio: ``(B, 4T, F)`` audio features at 100 Hz.
            emotion: ``(B,)`` long emotion index.
            level: ``(B,)`` long intensity 1..3.
            reference: reference face (normalized landmarks ``(B, 68, 3)``, translation, scale).
            teacher: ``(B, T, CUE_FEATURES)`` ground-truth cue features for teacher forcing, or
                ``None`` for free-running generation.
            sampling_probability: scheduled-sampling probability (with ``teacher``).
            noise: ``(B, T + 1, noise_dim)`` motion noise (stochastic networks; ``None``: drawn
                from the global RNG; see :meth:`seeded_noise`).

        Returns:
            :class:`~emoface.networks.sequentializer.CueOutput` of ``T`` frames.
        """
        audio_codes = self.audio_encoder(audio)  # (B, T, A)
        condition = torch.cat(
            [self.emotion_embedding(emotion, level), self.reference_encoder(reference.normalized_landmarks)], -1
        )
        motion_audio = None if self.motion_audio_encoder is None else self.motion_audio_encoder(audio)
        return self.sequentializer(audio_codes, condition, reference, teacher, sampling_probability, noise, motion_audio)
