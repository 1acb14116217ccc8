"""Motion metrics: within-clip statistics per emotion, Frechet motion distance, head-motion/energy correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emoface.geometry.rotations import euler_to_matrix
from emoface.metrics import FrechetMotionDistance, MotionEnergyCorrelation, MotionStatistics
from emoface.metrics import functional as MF


def _sequences(batch: int, frames: int, amplitude: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler ``(B, T, 3)`` and gaze ``(B, T, 2, 2)``: sinusoids of random phase scaled by ``amplitude``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float64)
    phase = torch.rand(batch, 1, 5, generator=g, dtype=torch.float64) * 2 * math.pi
    tracks = amplitude * torch.sin(0.3 * t[None, :, None] + phase) + torch.randn(batch, 1, 5, generator=g, dtype=torch.float64)
    euler = tracks[..., :3]
    gaze = tracks[..., 3:].unsqueeze(-2).expand(batch, frames, 2, 2).clone()
    return euler, gaze


def test_motion_statistics_are_std_and_mean_speed() -> None:
    tracks = torch.tensor([[[0.0], [2.0], [0.0], [2.0]]], dtype=torch.float64)  # (1, 4, 1)
    stats = MF.motion_statistics(tracks)
    assert stats["std"].item() == pytest.approx(1.0)
    assert stats["velocity"].item() == pytest.approx(2.0)
    euler, gaze = _sequences(2, 10, 3.0, 0)
    tracks = MF.motion_tracks(euler, gaze)
    assert tracks.shape == (2, 10, 5)
    torch.testing.assert_close(MF.motion_tracks(euler_to_matrix(euler), gaze), tracks, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="T >= 2"):
        MF.motion_statistics(tracks[:, :1])
    with pytest.raises(ValueError, match="gaze must be"):
        MF.motion_tracks(euler, gaze[:, :5])


def test_motion_statistics_metric_ratio_per_emotion() -> None:
    metric = MotionStatistics()
    real_euler, real_gaze = _sequences(8, 30, 4.0, 1)
    emotion = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    # Generated motion at half the amplitude for every cue: every ratio is 0.5, whatever the emotion.
    metric.update(real_euler * 0.5, real_gaze * 0.5, real_euler, real_gaze, emotion)
    values = metric.compute()
    for cue in MF.MOTION_CUES:
        assert values[f"std_ratio/{cue}"].item() == pytest.approx(0.5, rel=1e-6)
        assert values[f"velocity_ratio/{cue}"].item() == pytest.approx(0.5, rel=1e-6)
    table = metric.per_emotion()
    assert table["pred_std"].shape == (8, 5) and torch.isnan(table["pred_std"][4:]).all()
    assert table["count"][:4].tolist() == [2.0] * 4
    with pytest.raises(ValueError, match="emotion indices"):
        metric.update(real_euler, real_gaze, real_euler, real_gaze, emotion + 5)
    with pytest.raises(RuntimeError, match="before any update"):
        MotionStatistics().compute()


def test_frechet_motion_distance_is_zero_for_the_same_set_and_grows_with_damping() -> None:
    euler, gaze = _sequences(64, 32, 4.0, 2)
    same = FrechetMotionDistance()
    same.update(euler, gaze, euler, gaze)
    assert same.compute().item() == pytest.approx(0.0, abs=1e-4)
    distances = []
    for damping in (0.9, 0.5, 0.1):
        metric = FrechetMotionDistance()
        metric.update(euler * damping, gaze * damping, euler, gaze)
        distances.append(metric.compute().item())
    assert 0 < distances[0] < distances[1] < distances[2]
    # The class equals the functional form on the same features.
    feats = MF.motion_features(MF.motion_tracks(euler, gaze))
    assert feats.shape == (64, 15)
    fd = MF.frechet_motion_distance(MF.motion_features(MF.motion_tracks(euler * 0.5, gaze * 0.5)), feats)
    metric = FrechetMotionDistance()
    metric.update(euler[:40] * 0.5, gaze[:40] * 0.5, euler[:40], gaze[:40])
    metric.update(euler[40:] * 0.5, gaze[40:] * 0.5, euler[40:], gaze[40:])
    assert metric.compute().item() == pytest.approx(fd.item(), rel=1e-6)
    with pytest.raises(RuntimeError, match="at least 2"):
        FrechetMotionDistance().compute()


def test_motion_energy_correlation() -> None:
    frames = 40
    g = torch.Generator().manual_seed(3)
    energy = torch.rand(4, frames, generator=g, dtype=torch.float64)
    # A head whose angular speed is the energy: correlation 1; a still head: 0; random walk: ~0.
    yaw = torch.cat([torch.zeros(4, 1, dtype=torch.float64), energy[:, 1:].cumsum(1)], 1)
    moving = torch.stack([yaw, torch.zeros_like(yaw), torch.zeros_like(yaw)], -1)
    np.testing.assert_allclose(MF.motion_energy_correlation(moving, energy).numpy(), 1.0, atol=1e-9)
    assert (MF.motion_energy_correlation(torch.zeros_like(moving), energy) == 0).all()
    metric = MotionEnergyCorrelation()
    metric.update(moving * 0.5 + 0.0, moving, energy)
    values = metric.compute()
    assert values["generated"].item() == pytest.approx(1.0) and values["ratio"].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="energy must be"):
        MF.motion_energy_correlation(moving, energy[:, :-1])


def test_speech_energy_reads_log_energy_rows() -> None:
    audio = torch.zeros(1, 8, 39)
    audio[0, :4, 0] = math.log(4.0)  # frame 0: energy 4 -> amplitude 2
    energy = MF.speech_energy(audio, 2)
    torch.testing.assert_close(energy, torch.tensor([[2.0, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="audio must be"):
        MF.speech_energy(audio, 3)
