"""Similarity (Umeyama) alignment of point sets: the basis of head-pose estimation."""

from __future__ import annotations

import torch
from torch import Tensor


def umeyama(source: Tensor, target: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares similarity transform with ``target ~= scale * rotation @ source + translation``.

    Umeyama (1991), batched over leading dimensions, with optional per-point weights.

    Args:
        source: ``(..., N, 3)`` points (e.g. the canonical mean face).
        target: ``(..., N, 3)`` corresponding points (e.g. detected landmarks).
        weights: ``(N,)`` or ``(..., N)`` non-negative point weights; uniform when ``None``.

    Returns:
        ``rotation (..., 3, 3)`` (proper, det = +1), ``translation (..., 3)``, ``scale (...)``.
    """
    source, target = torch.broadcast_tensors(source, target)
    if weights is None:
        weights = torch.ones(source.shape[:-1], dtype=source.dtype, device=source.device)
    weights = (weights / weights.sum(-1, keepdim=True)).expand(source.shape[:-1])
    w = weights.unsqueeze(-1)
    mu_s = (w * source).sum(-2)
    mu_t = (w * target).sum(-2)
    src = source - mu_s.unsqueeze(-2)
    tgt = target - mu_t.unsqueeze(-2)
    covariance = tgt.transpose(-1, -2) @ (w * src)  # (..., 3, 3)
    u, singular, vh = torch.linalg.svd(covariance)
    det = torch.linalg.det(u @ vh)
    sign = torch.ones_like(singular)
    sign[..., -1] = torch.where(det < 0, -1.0, 1.0)
    rotation = u @ torch.diag_embed(sign) @ vh
    var_s = (w * src.pow(2)).sum((-1, -2))
    scale = (singular * sign).sum(-1) / var_s
    translation = mu_t - scale.unsqueeze(-1) * (rotation @ mu_s.unsqueeze(-1)).squeeze(-1)
    return rotation, translation, scale


def apply_similarity(points: Tensor, rotation: Tensor, translation: Tensor, scale: Tensor) -> Tensor:
    """``scale * rotation @ points + translation`` for ``points (..., N, 3)``."""
    return scale[..., None, None] * points @ rotation.transpose(-1, -2) + translation.unsqueeze(-2)


def invert_similarity(points: Tensor, rotation: Tensor, translation: Tensor, scale: Tensor) -> Tensor:
    """Bring ``points (..., N, 3)`` back through the inverse of :func:`apply_similarity`."""
    return (points - translation.unsqueeze(-2)) @ rotation / scale[..., None, None]
