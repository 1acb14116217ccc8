"""Relocation math: hand-computed cases, batching, gradients, agreement with mini-MEAD's renderer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emoface.geometry.alignment import apply_similarity
from emoface.geometry.landmarks import EYEBALL_RADIUS, eye_centers, mean_face
from emoface.geometry.relocation import LEFT_PUPIL, NUM_RELOCATED_POINTS, RIGHT_PUPIL, relocate
from emoface.geometry.rotations import euler_to_matrix


def test_identity_pose_and_straight_gaze_keep_the_canonical_face() -> None:
    face = mean_face()
    out = relocate(face, torch.zeros(2, 2), torch.eye(3), torch.zeros(3), torch.tensor(1.0))
    assert out.points.shape == (NUM_RELOCATED_POINTS, 3)
    torch.testing.assert_close(out.landmarks, face)
    # zero gaze: each pupil sits exactly on its eye contour's centre
    torch.testing.assert_close(out.pupils, eye_centers(face))
    torch.testing.assert_close(out.gaze_vectors, torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]))


def test_scale_and_translation_by_hand() -> None:
    face = mean_face()
    out = relocate(face, torch.zeros(2, 2), torch.eye(3), torch.tensor([128.0, 120.0, 5.0]), torch.tensor(100.0))
    expected = face * 100.0 + torch.tensor([128.0, 120.0, 5.0])
    torch.testing.assert_close(out.landmarks, expected)
    # nose tip (30): hand computed from the mean face's coordinates
    x, y, z = face[30].tolist()
    torch.testing.assert_close(out.points[30], torch.tensor([100 * x + 128, 100 * y + 120, 100 * z + 5]))


def test_yaw_90_rotates_x_into_minus_z() -> None:
    # Ry(90 deg) maps (1, 0, 0) -> (0, 0, -1) and (0, 0, 1) -> (1, 0, 0).
    face = torch.zeros(68, 3)
    face[0] = torch.tensor([1.0, 0.0, 0.0])
    face[1] = torch.tensor([0.0, 0.0, 1.0])
    rotation = euler_to_matrix(torch.tensor([90.0, 0.0, 0.0]))
    out = relocate(face, torch.zeros(2, 2), rotation, torch.zeros(3), torch.tensor(2.0))
    torch.testing.assert_close(out.points[0], torch.tensor([0.0, 0.0, -2.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.points[1], torch.tensor([2.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    # a straight gaze turns with the head: R @ (0, 0, -1) = (-1, 0, 0)
    torch.testing.assert_close(out.gaze_vectors[0], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_gaze_moves_the_pupil_on_the_eyeball_by_hand() -> None:
    face = mean_face()
    centre = eye_centers(face)
    r = EYEBALL_RADIUS
    gaze = torch.tensor([[90.0, 0.0], [0.0, 30.0]])  # right eye: yaw 90 (image left); left eye: pitch 30 (down)
    out = relocate(face, gaze, torch.eye(3), torch.zeros(3), torch.tensor(1.0))
    # yaw 90: d = (-1, 0, 0); pupil = centre + (0, 0, r) + r * d
    torch.testing.assert_close(out.points[RIGHT_PUPIL], centre[0] + torch.tensor([-r, 0.0, r]))
    # pitch 30: d = (0, sin 30, -cos 30)
    s, c = math.sin(math.radians(30)), math.cos(math.radians(30))
    torch.testing.assert_close(out.points[LEFT_PUPIL], centre[1] + torch.tensor([0.0, r * s, r - r * c]))
    # the 68 landmarks do not depend on gaze
    torch.testing.assert_close(out.landmarks, face)


def test_batched_matches_per_item_and_is_differentiable() -> None:
    generator = torch.Generator().manual_seed(0)
    batch, frames = 3, 4
    face = (mean_face() + 0.01 * torch.randn(batch, frames, 68, 3, generator=generator)).requires_grad_(True)
    gaze = (10 * torch.randn(batch, frames, 2, 2, generator=generator)).requires_grad_(True)
    euler = (10 * torch.randn(batch, frames, 3, generator=generator)).requires_grad_(True)
    translation = (100 + 10 * torch.randn(batch, frames, 3, generator=generator)).requires_grad_(True)
    scale = (100 + torch.rand(batch, frames, generator=generator)).requires_grad_(True)
    rotation = euler_to_matrix(euler)
    out = relocate(face, gaze, rotation, translation, scale)
    assert out.points.shape == (batch, frames, 70, 3)
    assert out.gaze_vectors.shape == (batch, frames, 2, 3)
    single = relocate(face[1, 2], gaze[1, 2], rotation[1, 2], translation[1, 2], scale[1, 2])
    torch.testing.assert_close(out.points[1, 2], single.points)
    torch.testing.assert_close(out.landmarks, apply_similarity(face, rotation, translation, scale))
    out.points.sum().backward()
    for tensor in (face, gaze, euler, translation, scale):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_matches_mini_mead_ground_truth(tmp_path) -> None:
    """Relocating mini-MEAD's ground-truth cues reproduces its landmarks and rendered pupils."""
    from emoface.datamodules.mini_mead import ClipJob, MiniMEADConfig, make_clip
    from emoface.io.arrays import load_npz

    config = MiniMEADConfig(speakers=3, clips=1, seconds=0.4, size=64, seed=3)
    make_clip(ClipJob(str(tmp_path / "M005"), "M005", "happy", 3, 1, config))
    found = list(tmp_path.rglob("groundtruth/**/*.npz"))
    assert len(found) == 1
    gt = {k: torch.from_numpy(np.asarray(v)) for k, v in load_npz(found[0]).items() if np.asarray(v).dtype.kind == "f"}
    out = relocate(gt["normalized_landmarks"], gt["gaze"], gt["rotation"], gt["translation"], gt["scale"])
    torch.testing.assert_close(out.landmarks, gt["landmarks"], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(out.pupils[..., :2], gt["pupils"], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_kept(dtype: torch.dtype) -> None:
    out = relocate(mean_face(dtype), torch.zeros(2, 2, dtype=dtype), torch.eye(3, dtype=dtype),
                   torch.zeros(3, dtype=dtype), torch.tensor(1.0, dtype=dtype))  # fmt: skip
    assert out.points.dtype == dtype
