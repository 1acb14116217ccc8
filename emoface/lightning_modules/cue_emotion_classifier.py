"""CueEmotionClassifier: trains the collaborative emotion classifier on real cue sequences.

``emoface fit --config configs/cue_emotion_classifier.yaml`` trains it on the MEADDataModule's
``normalized_landmarks``, ``gaze`` and ``pose`` fields; :class:`~.speech_to_landmarks.SpeechToLandmarks`
then loads its checkpoint (``emotion_classifier_checkpoint``) and uses it frozen as the
emotion-alignment critic of generated cue sequences.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from emoface.lightning_modules._hparams import save_hyperparameters_except_objects
from emoface.networks.cue_classifier import CueEmotionClassifierNet

CLASSIFIER_PREFIX = "classifier."
"""Prefix of the classifier's weights in this module's ``state_dict`` (and its checkpoints)."""


class CueEmotionClassifier(LightningModule):
    """Emotion classification of real (landmarks, gaze, pose) sequences.

    Args:
        classifier: the network (default: :class:`CueEmotionClassifierNet` with its defaults).
        optimizer: optimizer factory (default: AdamW, lr 1e-3, weight decay 1e-4).
        landmark_noise: std of Gaussian noise added to normalized landmarks in training
            (canonical units), a regulariser that also makes the critic tolerant of the small
            errors of generated landmarks.
        gaze_noise: std of noise added to gaze in training (degrees).
    """

    def __init__(
        self,
        classifier: CueEmotionClassifierNet | None = None,
        optimizer: OptimizerCallable | None = None,
        landmark_noise: float = 0.005,
        gaze_noise: float = 1.0,
    ) -> None:
        super().__init__()
        save_hyperparameters_except_objects(self)
        self.classifier = classifier if classifier is not None else CueEmotionClassifierNet()
        self.optimizer_factory = optimizer
        self.landmark_noise = landmark_noise
        self.gaze_noise = gaze_noise

    def forward(
        self, normalized_landmarks: Tensor, gaze: Tensor, rotation: Tensor, reference: Tensor | None = None
    ) -> Tensor:
        """``(B, T, 68, 3)``, ``(B, T, 2, 2)``, ``(B, T, 3, 3)``, ref ``(B, 68, 3)`` -> logits ``(B, 8)``."""
        return self.classifier(normalized_landmarks, gaze, rotation, reference)

    def _shared_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        landmarks, gaze = batch["normalized_landmarks"], batch["gaze"]
        if stage == "train":
            landmarks = landmarks + self.landmark_noise * torch.randn_like(landmarks)
            gaze = gaze + self.gaze_noise * torch.randn_like(gaze)
        logits = self(landmarks, gaze, batch["rotation"], batch.get("ref_normalized_landmarks"))
        loss = F.cross_entropy(logits, batch["emotion"])
        accuracy = (logits.argmax(-1) == batch["emotion"]).float().mean()
        batch_size = logits.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", batch_size=batch_size, sync_dist=stage != "train")
        self.log(f"{stage}/accuracy", accuracy, prog_bar=True, batch_size=batch_size, sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy on one batch of real cue windows."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Log ``val/loss`` and ``val/accuracy``."""
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Log ``test/loss`` and ``test/accuracy``."""
        self._shared_step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW (or the configured optimizer) over the classifier."""
        if self.optimizer_factory is not None:
            return self.optimizer_factory(self.parameters())
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-4)


def load_classifier_weights(
    classifier: CueEmotionClassifierNet, checkpoint: str | os.PathLike
) -> CueEmotionClassifierNet:
    """Load a :class:`CueEmotionClassifier` checkpoint's weights into ``classifier``.

    Accepts a Lightning checkpoint of :class:`CueEmotionClassifier` (weights under ``classifier.``)
    or a plain state dict of :class:`CueEmotionClassifierNet`. Loaded with ``weights_only=True``.

    Raises:
        FileNotFoundError: naming the missing file and how to make it.
        RuntimeError: when the weights do not fit the configured network, with the reason.
    """
    path = os.fspath(checkpoint)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"emotion classifier checkpoint {path!r} does not exist; train it with "
            "`emoface fit --config configs/cue_emotion_classifier.yaml` (it writes "
            "checkpoints under its trainer.default_root_dir) or set "
            "model.init_args.emotion_classifier_checkpoint: null to train the classifier jointly"
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = payload.get("state_dict", payload)
    if any(key.startswith(CLASSIFIER_PREFIX) for key in state):
        state = {key[len(CLASSIFIER_PREFIX) :]: value for key, value in state.items() if key.startswith(CLASSIFIER_PREFIX)}
    try:
        classifier.load_state_dict(state)
    except RuntimeError as error:
        raise RuntimeError(
            f"emotion classifier checkpoint {path!r} does not fit the configured "
            f"CueEmotionClassifierNet (configure the same hidden/kernel_size as when it was trained): {error}"
        ) from error
    return classifier
