"""Conditioning codes of stage 1: the emotion (+ intensity) embedding and the reference encoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emoface.emotions import LEVELS, NUM_EMOTIONS
from emoface.geometry.landmarks import NUM_LANDMARKS


class EmotionEmbedding(nn.Module):
    """A learned matrix with one row per MEAD emotion, plus an intensity (level) embedding.

    The code is ``MLP([E[emotion], L[level]])`` so that the level can modulate each emotion
    differently (a stronger "happy" is not a stronger "sad").

    Args:
        dim: size of the emotion code.
        num_emotions: rows of the emotion matrix (MEAD: 8, in :data:`emoface.emotions.EMOTIONS` order).
        num_levels: intensity levels (MEAD: 1..3; index 0 is unused padding).
    """

    def __init__(self, dim: int = 64, num_emotions: int = NUM_EMOTIONS, num_levels: int = len(LEVELS)) -> None:
        super().__init__()
        self.dim = dim
        self.emotion = nn.Embedding(num_emotions, dim)
        self.level = nn.Embedding(num_levels + 1, dim)
        self.mix = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, emotion: Tensor, level: Tensor) -> Tensor:
        """``emotion (B,)`` long, ``level (B,)`` long in 1..3 -> ``(B, dim)``."""
        e = self.emotion(emotion)  # (B, D)
        return e + self.mix(torch.cat([e, self.level(level)], -1))


class ReferenceEncoder(nn.Module):
    """MLP over the reference face's normalized 3D landmarks: an identity code.

    Args:
        dim: size of the identity code.
        hidden: hidden width.
        num_landmarks: landmarks per face (68).
    """

    def __init__(self, dim: int = 64, hidden: int = 256, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(num_landmarks * 3, hidden), nn.GELU(), nn.Linear(hidden, dim)
        )

    def forward(self, ref_normalized_landmarks: Tensor) -> Tensor:
        """``(B, 68, 3)`` canonical-frame landmarks -> ``(B, dim)``."""
        centered = ref_normalized_landmarks - ref_normalized_landmarks.mean(-2, keepdim=True)
        return self.net(centered * 4.0)  # canonical coordinates are ~0.25; bring them to ~1
