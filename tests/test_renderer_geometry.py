"""Keypoint maths of the face-vid2vid renderer (emoface.geometry.keypoints) and the random warps."""

from __future__ import annotations

import math

import pytest
import torch

from emoface.geometry.keypoints import (
    FACE_VID2VID_PI,
    bins_to_degrees,
    degrees_to_bins,
    fit_keypoint_parameters,
    keypoints_from_estimate,
    rotation_from_ypr,
    transform_keypoints,
)
from emoface.geometry.warps import RandomTPS, coordinate_grid_2d


def test_bins_to_degrees_hand_cases() -> None:
    one_hot = torch.full((2, 66), -1e4)
    one_hot[0, 33] = 0.0  # bin 33 -> 33 * 3 - 99 = 0 degrees
    one_hot[1, 0] = 0.0  # bin 0 -> -99 degrees
    assert bins_to_degrees(one_hot).tolist() == pytest.approx([0.0, -99.0])
    # Uniform bins: the mean index 32.5 -> -1.5 degrees.
    assert bins_to_degrees(torch.zeros(66)).item() == pytest.approx(-1.5)
    # Two equal bins 10 and 20 -> index 15 -> -54 degrees.
    two = torch.full((66,), -1e4)
    two[[10, 20]] = 0.0
    assert bins_to_degrees(two).item() == pytest.approx(-54.0)


def test_degrees_to_bins_inverts_bin_centres_and_clamps() -> None:
    degrees = torch.tensor([-99.0, -97.5, 0.0, 1.5, 98.9, 200.0, -300.0])
    assert degrees_to_bins(degrees).tolist() == [0, 0, 33, 33, 65, 65, 0]


def test_rotation_axes_by_hand() -> None:
    zero = torch.zeros(())
    ninety = torch.tensor(90.0)
    # Yaw 90: Ry maps x to -z and z to x.
    ry = rotation_from_ypr(ninety, zero, zero, pi=math.pi)
    assert torch.allclose(ry @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 0, -1]), atol=1e-6)
    assert torch.allclose(ry @ torch.tensor([0.0, 0, 1]), torch.tensor([1.0, 0, 0]), atol=1e-6)
    # Pitch 90: Rx maps y to z.
    rx = rotation_from_ypr(zero, ninety, zero, pi=math.pi)
    assert torch.allclose(rx @ torch.tensor([0.0, 1, 0]), torch.tensor([0.0, 0, 1]), atol=1e-6)
    # Roll 90: Rz maps x to y.
    rz = rotation_from_ypr(zero, zero, ninety, pi=math.pi)
    assert torch.allclose(rz @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    # The order is Rx(pitch) Ry(yaw) Rz(roll).
    both = rotation_from_ypr(ninety, ninety, ninety, pi=math.pi)
    assert torch.allclose(both, rx @ ry @ rz, atol=1e-6)


def test_public_degree_unit_is_3_14() -> None:
    # The public code converts with deg / 180 * 3.14: 180 "degrees" is 3.14 rad, not pi.
    r = rotation_from_ypr(torch.tensor(180.0), torch.tensor(0.0), torch.tensor(0.0))
    assert FACE_VID2VID_PI == 3.14
    assert r[0, 0].item() == pytest.approx(math.cos(3.14), abs=1e-7)
    assert r[0, 2].item() == pytest.approx(math.sin(3.14), abs=1e-6)


def test_transform_keypoints_by_hand() -> None:
    kp = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # (1, 2, 3)
    t = torch.tensor([[0.1, 0.2, 0.3]])
    exp = torch.tensor([[0.0, 0.0, 0.5, 0.0, 0.0, -0.5]])  # (1, 2 * 3)
    zero = torch.zeros(1)
    out = transform_keypoints(kp, zero, zero, zero, t, exp)
    assert torch.allclose(out, torch.tensor([[[1.1, 0.2, 0.8], [0.1, 1.2, -0.2]]]))
    # Roll 90 (true degrees) turns x into y before translating.
    out = transform_keypoints(kp, zero, zero, torch.tensor([90.0]), t, torch.zeros(1, 2, 3), pi=math.pi)
    assert torch.allclose(out, torch.tensor([[[0.1, 1.2, 0.3], [-0.9, 0.2, 0.3]]]), atol=1e-6)


def test_keypoints_from_estimate_uses_the_expected_angles() -> None:
    torch.manual_seed(0)
    kp = torch.randn(3, 15, 3)
    estimate = {name: torch.randn(3, 66) for name in ("yaw", "pitch", "roll")}
    estimate.update(t=torch.randn(3, 3), exp=torch.randn(3, 45))
    expected = transform_keypoints(
        kp, *(bins_to_degrees(estimate[n]) for n in ("yaw", "pitch", "roll")), estimate["t"], estimate["exp"]
    )
    assert torch.allclose(keypoints_from_estimate(kp, estimate), expected)


def test_fit_keypoint_parameters_recovers_rigid_pose_and_zero_mean_expression() -> None:
    generator = torch.Generator().manual_seed(1)
    kp_canonical = torch.randn(4, 15, 3, generator=generator) * 0.4
    angles = (torch.rand(3, 4, generator=generator) - 0.5) * 100  # within +-50 degrees
    t = torch.randn(4, 3, generator=generator) * 0.1
    exp = torch.randn(4, 15, 3, generator=generator) * 0.02
    exp = exp - exp.mean(-2, keepdim=True)  # the decomposition's expression has zero mean
    posed = transform_keypoints(kp_canonical, *angles, t, exp)
    fitted = fit_keypoint_parameters(posed, kp_canonical)
    rebuilt = transform_keypoints(kp_canonical, fitted["yaw"], fitted["pitch"], fitted["roll"], fitted["t"], fitted["exp"])
    assert torch.allclose(rebuilt, posed, atol=1e-5)
    # Small zero-mean expressions barely move the rigid fit: the angles come back within two degrees.
    for k, name in enumerate(("yaw", "pitch", "roll")):
        assert torch.allclose(fitted[name], angles[k], atol=2.0), name
    assert torch.allclose(fitted["t"], t, atol=0.01)
    # Without expression the fit is exact.
    rigid = transform_keypoints(kp_canonical, *angles, t, torch.zeros_like(exp))
    exact = fit_keypoint_parameters(rigid, kp_canonical)
    assert torch.allclose(torch.stack([exact["yaw"], exact["pitch"], exact["roll"]]), angles, atol=1e-3)
    assert exact["exp"].abs().max() < 1e-5


def test_random_tps_identity_and_consistency() -> None:
    identity = RandomTPS(2, sigma_affine=0.0, sigma_tps=0.0)
    images = torch.rand(2, 3, 16, 16)
    assert torch.allclose(identity.warp_images(images), images, atol=1e-5)
    points = torch.rand(2, 7, 2) * 2 - 1
    assert torch.allclose(identity.warp_coordinates(points), points)
    # A pure translation by one pixel column: the warped image samples one pixel to the right.
    shift = RandomTPS(1, sigma_affine=0.0, sigma_tps=0.0)
    shift.theta[0, 0, 2] = 2.0 / 15  # one pixel of a 16-wide grid in [-1, 1]
    warped = shift.warp_images(images[:1])
    assert torch.allclose(warped[..., :-1], images[:1, ..., 1:], atol=1e-5)
    grid = coordinate_grid_2d(3, 4)
    assert grid.shape == (3, 4, 2) and grid[0, 0].tolist() == [-1.0, -1.0] and grid[-1, -1].tolist() == [1.0, 1.0]


def test_region_box_masks_cover_the_points_box_grown_by_the_margin_and_clipped() -> None:
    from emoface.geometry.landmarks import MOUTH, region_box_masks

    landmarks = torch.zeros(2, 68, 3)
    landmarks[0, list(MOUTH), :2] = torch.tensor([[10.0, 20.0], [18.0, 24.0]]).repeat(10, 1)  # box x 10-18, y 20-24
    landmarks[1, list(MOUTH), :2] = torch.tensor([[-3.0, 28.0], [5.0, 40.0]]).repeat(10, 1)  # runs past the left edge
    masks = region_box_masks(landmarks, MOUTH, 32, 30, margin=0.25)  # grown by 2 px / 3 px
    assert masks.shape == (2, 1, 32, 30)
    expected = torch.zeros(2, 1, 32, 30)
    expected[0, 0, 18:27, 8:21] = 1
    expected[1, 0, 25:32, 0:9] = 1
    assert torch.equal(masks, expected)


def test_mirrored_landmarks_are_the_mirror_image_s_landmarks() -> None:
    """``mirror_landmarks``: x -> width - 1 - x and each point takes its partner's index, so that a
    mirrored face's points name the same features as an unmirrored one's; the permutation is its
    own inverse and keeps the midline (nose bridge, lip middles, chin) in place."""
    from emoface.geometry.landmarks import MIRRORED, mean_face, mirror_landmarks

    assert sorted(MIRRORED) == list(range(68)) and all(MIRRORED[MIRRORED[i]] == i for i in range(68))
    assert [MIRRORED[i] for i in (0, 17, 31, 36, 39, 41, 48, 55, 60, 65)] == [16, 26, 35, 45, 42, 46, 54, 59, 64, 67]
    assert all(MIRRORED[i] == i for i in (8, 27, 30, 33, 51, 57, 62, 66))
    face = mean_face()[:, :2] * 20 + 32  # a frontal face in a 64 px frame, centred at x = 32
    face[:, 0] += 3.0  # moved right: its mirror image sits 3 px left of the centre
    mirrored = mirror_landmarks(face, width=64)
    # The image-left eye of the mirror image (36-41) is the mirror of the image-right eye (42-47).
    torch.testing.assert_close(mirrored[36:42, 0].mean(), 63 - face[42:48, 0].mean())
    assert mirrored[36:42, 0].mean() < mirrored[42:48, 0].mean()
    torch.testing.assert_close(mirrored[:, 1], face[list(MIRRORED), 1])
    torch.testing.assert_close(mirror_landmarks(mirrored, width=64), face)
    # A symmetric face mirrors onto itself once it is centred in the frame.
    centred = mean_face()[:, :2] * 20 + 31.5
    torch.testing.assert_close(mirror_landmarks(centred, width=64), centred, atol=1e-4, rtol=0)


def test_pixels_to_grid_matches_the_keypoints_coordinate_grid() -> None:
    from emoface.geometry.landmarks import pixels_to_grid

    grid = coordinate_grid_2d(4, 6)  # (H, W, 2): x, y of each pixel centre
    pixels = torch.stack(torch.meshgrid(torch.arange(6.0), torch.arange(4.0), indexing="xy"), -1)  # (4, 6, 2)
    torch.testing.assert_close(pixels_to_grid(pixels, height=4, width=6), grid)
