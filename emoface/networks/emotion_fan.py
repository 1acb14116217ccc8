"""Emotion-FAN video emotion classifier (Meng et al., ICIP 2019), Open-Debin/Emotion-FAN layout.

A ResNet frame encoder gives one feature ``f_i`` per frame; *self-attention* weights each frame
with ``alpha_i = sigmoid(w_a . f_i)`` into ``v' = sum alpha_i f_i / sum alpha_i``; *relation
attention* re-weights the frames by ``beta_i = sigmoid(w_b . [f_i, v'])`` into
``v = sum alpha_i beta_i [f_i, v'] / sum alpha_i beta_i``, and ``pred_fc2`` classifies ``v``.

Parameter names follow the reference ``ResNet_AT`` (``conv1``, ``bn1``, ``layer1..4``,
``alpha.0``, ``beta.0``, ``pred_fc1``, ``pred_fc2``), so an Emotion-FAN state dict with the
same number of classes loads (``module.`` prefixes are stripped). With the default
``base_width=64, layers=(2, 2, 2, 2)`` the encoder is ResNet18; smaller widths / depths build
tiny networks for small crops.

Input frames: ``(B, T, 3, H, W)`` RGB floats in [0, 1] (or uint8, scaled by 1/255), resized to
``image_size`` when they differ; the class order is the network's ``labels`` (emoface's
:data:`emoface.emotions.EMOTIONS` by default; :data:`EMOTION_FAN_LABELS` is EAT's order).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from emoface.emotions import EMOTIONS
from emoface.io.weights import extract_state_dict, load_weights

EMOTION_FAN_LABELS: tuple[str, ...] = (
    "happy",
    "angry",
    "disgusted",
    "fear",
    "sad",
    "neutral",
    "surprised",
    "contempt",
)
"""Class order of the Emotion-FAN model used by EAT's evaluation (0 happy ... 7 contempt),
written with emoface's emotion names."""


class EmotionFAN(nn.Module):
    """Frame-attention video emotion classifier.

    Args:
        num_classes: number of emotion classes (8 for MEAD).
        layers: residual blocks per stage (ResNet18: ``(2, 2, 2, 2)``).
        base_width: channels of the first stage (ResNet18: 64); the feature size is ``8 * base_width``.
        image_size: side of the square face crops the encoder sees (224 in Emotion-FAN).
        labels: emotion name of each output class, in output order.
        dropout: dropout before the attention heads (0.5 in the reference) and the classifier (0.6).
    """

    def __init__(
        self,
        num_classes: int = 8,
        layers: Sequence[int] = (2, 2, 2, 2),
        base_width: int = 64,
        image_size: int = 224,
        labels: Sequence[str] = EMOTIONS,
        dropout: tuple[float, float] = (0.5, 0.6),
    ) -> None:
        super().__init__()
        if len(labels) != num_classes:
            raise ValueError(f"{len(labels)} labels for {num_classes} classes")
        self.labels = tuple(labels)
        self.image_size = image_size
        self.config = {
            "num_classes": num_classes,
            "layers": list(layers),
            "base_width": base_width,
            "image_size": image_size,
            "labels": list(self.labels),
        }
        self.feature_dim = 8 * base_width
        self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._inplanes = base_width
        self.layer1 = self._make_layer(base_width, layers[0], 1)
        self.layer2 = self._make_layer(2 * base_width, layers[1], 2)
        self.layer3 = self._make_layer(4 * base_width, layers[2], 2)
        self.layer4 = self._make_layer(8 * base_width, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout[0])
        self.dropout2 = nn.Dropout(dropout[1])
        self.alpha = nn.Sequential(nn.Linear(self.feature_dim, 1), nn.Sigmoid())
        self.beta = nn.Sequential(nn.Linear(2 * self.feature_dim, 1), nn.Sigmoid())
        self.pred_fc1 = nn.Linear(self.feature_dim, num_classes)
        self.pred_fc2 = nn.Linear(2 * self.feature_dim, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        modules = [BasicBlock(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes
        modules += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def preprocess(self, frames: Tensor) -> Tensor:
        """``(N, 3, H, W)`` uint8 or [0, 1] RGB -> float ``(N, 3, S, S)`` in [0, 1]."""
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return x

    def frame_features(self, frames: Tensor) -> Tensor:
        """Encoder features ``(N, 3, H, W)`` -> ``(N, feature_dim)``."""
        f = self.maxpool(self.relu(self.bn1(self.conv1(self.preprocess(frames)))))
        f = self.layer4(self.layer3(self.layer2(self.layer1(f))))
        return self.avgpool(f).flatten(1)

    def aggregate(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        """Self- and relation-attention pooling then the classifier.

        Args:
            features: ``(B, T, feature_dim)`` frame features.
            mask: ``(B, T)`` bool, frames to use (all when ``None``).

        Returns:
            ``(B, num_classes)`` logits.
        """
        alphas = self.alpha(self.dropout(features))  # (B, T, 1)
        if mask is not None:
            alphas = alphas * mask.unsqueeze(-1).to(alphas.dtype)
        vm = (features * alphas).sum(1) / alphas.sum(1).clamp_min(1e-8)  # (B, F)
        cascade = torch.cat([features, vm.unsqueeze(1).expand_as(features)], -1)  # (B, T, 2F)
        weights = self.beta(self.dropout(cascade)) * alphas  # (B, T, 1)
        pooled = (cascade * weights).sum(1) / weights.sum(1).clamp_min(1e-8)
        return self.pred_fc2(self.dropout2(pooled))

    def forward(self, videos: Tensor, frame_chunk: int = 0) -> Tensor:
        """Video logits.

        Args:
            videos: ``(B, T, 3, H, W)`` RGB frames, uint8 or float in [0, 1].
            frame_chunk: encode at most this many frames at once (0: all).

        Returns:
            ``(B, num_classes)`` logits in the order of ``self.labels``.
        """
        b, t = videos.shape[:2]
        flat = videos.flatten(0, 1)
        if frame_chunk and flat.shape[0] > frame_chunk:
            feats = torch.cat([self.frame_features(c) for c in flat.split(frame_chunk)])
        else:
            feats = self.frame_features(flat)
        return self.aggregate(feats.view(b, t, -1))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, **kwargs: object) -> EmotionFAN:
        """A classifier with weights from ``path`` (default: the hub cache ``emotion_fan_mead.pth``).

        The file holds a state dict (optionally wrapped in ``{"state_dict": ...}``, keys optionally
        prefixed ``module.``); files written by :meth:`export` also carry the constructor arguments
        under ``"hparams"``.
        """
        obj = load_weights("emotion_fan", path)
        if isinstance(obj, dict) and "hparams" in obj:
            kwargs = {**obj["hparams"], **kwargs}
            for key in ("labels", "layers"):
                if key in kwargs:
                    kwargs[key] = tuple(kwargs[key])  # type: ignore[arg-type]
        state = extract_state_dict(obj)
        net = cls(**kwargs)  # type: ignore[arg-type]
        net.load_state_dict(state, strict=True)
        return net.eval()

    def export(self, path: str | os.PathLike, hparams: dict | None = None) -> None:
        """Save ``{"state_dict", "hparams"}`` loadable by :meth:`from_pretrained` (weights_only safe)."""
        meta = {**self.config, **(hparams or {})}
        torch.save({"state_dict": self.state_dict(), "hparams": meta}, path)
