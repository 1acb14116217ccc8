"""Collaborative cue emotion classifier: one emotion per sequence of landmarks + gaze + pose."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emoface.emotions import NUM_EMOTIONS
from emoface.networks.cues import CLASSIFIER_FEATURES, classifier_features


class CueEmotionClassifierNet(nn.Module):
    """Sequence classifier over the three cues together (normalized landmarks, gaze, head rotation).

    Per-frame MLP, two temporal convolutions, mean + max pooling over time, linear head. Uses
    LayerNorm (no BatchNorm), so it behaves the same in train and eval mode and can be called
    with detached parameters as a frozen critic.

    Args:
        hidden: width.
        kernel_size: temporal kernel of the convolutions.
        num_classes: emotions (8).
        dropout: dropout before the head.
        use_gaze: read the gaze cue (False zeroes it: a classifier for the no-gaze ablation).
        use_pose: read the pose cue (False zeroes it).
    """

    def __init__(
        self,
        hidden: int = 128,
        kernel_size: int = 5,
        num_classes: int = NUM_EMOTIONS,
        dropout: float = 0.1,
        use_gaze: bool = True,
        use_pose: bool = True,
    ) -> None:
        super().__init__()
        self.use_gaze = use_gaze
        self.use_pose = use_pose
        self.frame = nn.Sequential(
            nn.Linear(CLASSIFIER_FEATURES, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        pad = kernel_size // 2
        self.temporal = nn.Sequential(
            nn.GELU(),
            nn.Conv1d(hidden, hidden, kernel_size, padding=pad),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, kernel_size, padding=pad),
            nn.GELU(),
        )
        self.head = nn.Sequential(nn.LayerNorm(2 * hidden), nn.Dropout(dropout), nn.Linear(2 * hidden, num_classes))

    def forward(
        self, normalized_landmarks: Tensor, gaze: Tensor, rotation: Tensor, reference: Tensor | None = None
    ) -> Tensor:
        """Classify cue sequences.

        Args:
            normalized_landmarks: ``(B, T, 68, 3)`` canonical frame.
            gaze: ``(B, T, 2, 2)`` per-eye (yaw, pitch) degrees.
            rotation: ``(B, T, 3, 3)`` head rotation.
            reference: ``(B, 68, 3)`` the actor's reference normalized landmarks (identity removal).

        Returns:
            ``(B, num_classes)`` logits.
        """
        if not self.use_gaze:
            gaze = torch.zeros_like(gaze)
        if not self.use_pose:
            rotation = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(rotation)
        x = self.frame(classifier_features(normalized_landmarks, gaze, rotation, reference))  # (B, T, H)
        x = self.temporal(x.transpose(1, 2))  # (B, H, T)
        pooled = torch.cat([x.mean(-1), x.amax(-1)], -1)
        return self.head(pooled)
