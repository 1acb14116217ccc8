"""2D landmarks -> 3D: depth from the canonical mean face fitted to the detected points.

A 2D detector (dlib's 68-point predictor) gives x, y only. emoface's landmarks are ``(68, 3)``
with z depth in pixel units (face-alignment's THREE_D convention, docs/data_format.md), so the
depth is borrowed from :data:`~emoface.geometry.landmarks.MEAN_FACE_NP`: the mean face is fitted
to the 2D points and its (scaled, rotated) z becomes the points' z. The detected x, y are kept
as they are. The depth is therefore the mean face's: identity and expression depth are not
recovered (an open mouth has the closed mean mouth's depth), only the head's scale and rotation.

Two fits:

* ``"orthographic"`` (default): scaled orthographic projection of the rotated mean face,
  ``p ~= s * (R @ X)[:2] + t``, with a full 3D rotation ``R`` (least-squares affine camera made
  orthonormal, then the scale refitted). Yaw and pitch foreshorten x and y, so the depth follows
  the head's rotation.
* ``"similarity"``: a 2D similarity (Umeyama) of the mean face's x, y onto the points; the depth
  is the frontal mean face's z scaled, so it carries roll only (no yaw or pitch).

The mean face is centred on its centroid, so z is relative to the face centre (translation
z = 0), as in mini-MEAD's ground truth.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from emoface.geometry.landmarks import NUM_LANDMARKS, mean_face

LIFT_METHODS = ("orthographic", "similarity")


def _weighted_centre(points: Tensor, w: Tensor) -> Tensor:
    return (w.unsqueeze(-1) * points).sum(-2)


def fit_mean_face_2d(
    points: Tensor, method: str = "orthographic", weights: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Fit the canonical mean face to 2D landmarks.

    Args:
        points: ``(..., 68, 2)`` x, y in pixels.
        method: ``"orthographic"`` (3D rotation under scaled orthographic projection) or
            ``"similarity"`` (2D similarity: in-plane rotation only).
        weights: ``(68,)`` non-negative point weights; uniform when ``None``.

    Returns:
        ``rotation (..., 3, 3)`` (proper), ``translation (..., 3)`` (z = 0), ``scale (...)`` with
        ``points ~= (scale * rotation @ mean_face + translation)[..., :2]``.
    """
    if method not in LIFT_METHODS:
        raise ValueError(f"unknown lifting method {method!r}; expected one of {', '.join(LIFT_METHODS)}")
    if points.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected (..., {NUM_LANDMARKS}, 2) points, got {tuple(points.shape)}")
    dtype = points.dtype if points.is_floating_point() else torch.float64
    points = points.to(dtype)
    model = mean_face(dtype=dtype, device=points.device)  # (68, 3)
    if weights is None:
        weights = torch.ones(NUM_LANDMARKS, dtype=dtype, device=points.device)
    w = (weights / weights.sum()).to(dtype)
    mu_p = _weighted_centre(points, w)  # (..., 2)
    mu_x = _weighted_centre(model, w)  # (3,)
    pc = points - mu_p.unsqueeze(-2)  # (..., 68, 2)
    xc = model - mu_x  # (68, 3)
    batch = pc.shape[:-2]

    if method == "similarity":
        cov = pc.transpose(-1, -2) @ (w.unsqueeze(-1) * xc[:, :2])  # (..., 2, 2)
        u, singular, vh = torch.linalg.svd(cov)
        det = torch.linalg.det(u @ vh)
        sign = torch.ones_like(singular)
        sign[..., -1] = torch.where(det < 0, -1.0, 1.0)
        rot2 = u @ torch.diag_embed(sign) @ vh
        scale = (singular * sign).sum(-1) / (w.unsqueeze(-1) * xc[:, :2].pow(2)).sum()
        rotation = torch.zeros(*batch, 3, 3, dtype=dtype, device=points.device)
        rotation[..., :2, :2] = rot2
        rotation[..., 2, 2] = 1.0
    else:
        # Affine camera A (2x3): least squares of pc ~= xc @ A^T.
        gram = xc.T @ (w.unsqueeze(-1) * xc)  # (3, 3)
        cross = pc.transpose(-1, -2) @ (w.unsqueeze(-1) * xc)  # (..., 2, 3)
        affine = cross @ torch.linalg.inv(gram)  # (..., 2, 3)
        u, _, vh = torch.linalg.svd(affine, full_matrices=False)  # u (..., 2, 2), vh (..., 2, 3)
        rows = u @ vh  # nearest matrix with orthonormal rows
        third = torch.linalg.cross(rows[..., 0, :], rows[..., 1, :], dim=-1)
        rotation = torch.cat([rows, third.unsqueeze(-2)], -2)
        projected = xc @ rows.transpose(-1, -2)  # (..., 68, 2)
        scale = (w.unsqueeze(-1) * pc * projected).sum((-1, -2)) / (w.unsqueeze(-1) * projected.pow(2)).sum((-1, -2))

    rotated_mu = (rotation @ mu_x.expand(*batch, 3).unsqueeze(-1)).squeeze(-1)  # (..., 3)
    translation = torch.zeros(*batch, 3, dtype=dtype, device=points.device)
    translation[..., :2] = mu_p - scale.unsqueeze(-1) * rotated_mu[..., :2]
    return rotation, translation, scale


def lift_landmarks(points: np.ndarray | Tensor, method: str = "orthographic") -> np.ndarray:
    """2D landmarks ``(..., 68, 2)`` -> ``(..., 68, 3)``: the same x, y plus the fitted mean face's z.

    z is in the pixel units of x, y (``scale * (rotation @ mean_face)_z``), relative to the face
    centre. Expression depth is the mean face's (see the module docstring).

    Returns:
        float32 array ``(..., 68, 3)``.
    """
    pts = torch.as_tensor(np.asarray(points, dtype=np.float64) if not isinstance(points, Tensor) else points)
    pts = pts.to(torch.float64)
    rotation, _, scale = fit_mean_face_2d(pts, method)
    model = mean_face(dtype=torch.float64, device=pts.device)
    depth = scale.unsqueeze(-1) * (model @ rotation.transpose(-1, -2))[..., 2]  # (..., 68)
    return torch.cat([pts, depth.unsqueeze(-1)], -1).float().cpu().numpy()
