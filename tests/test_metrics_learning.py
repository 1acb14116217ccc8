"""The evaluators learn: SyncNet and Emotion-FAN trained by the framework, scored by the public metrics.

The slow tests train both evaluators once on the session's ``evaluators_mead_cache`` (24 actors;
about 9 minutes on a 2-core CPU, cache included) and check the issue's criteria through the public
metrics (figures in the benchmark's docstring). The fast tests pin the AV-offset sign
convention end to end through :class:`SyncScore` with a hand-made "SyncNet" whose embeddings are
known: syncnet_python's offset is ``vshift - argmin(mdist)``, so a positive offset means the audio
leads the video, and audio delayed by ``k`` frames reads ``-k``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from benchmark_support import load_benchmark as load_benchmark_script
from torch import Tensor, nn

from emoface.metrics import SyncScore
from emoface.metrics import functional as MF

REPO = Path(__file__).resolve().parents[1]


def load_benchmark() -> ModuleType:
    """benchmarks/evaluators_learning.py as a module (benchmarks/ is not a package)."""
    return load_benchmark_script("evaluators_learning")


class _LoudnessSyncNet(nn.Module):
    """Lip embedding = per-frame brightness, audio embedding = per-frame MFCC energy, both standardised.

    A stand-in with the SyncNet interface whose in-sync pairs are known by construction.
    """

    image_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # the metric reads the device from the parameters

    @staticmethod
    def _standardise(x: Tensor) -> Tensor:
        return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6)

    def forward_lip(self, clip: Tensor) -> Tensor:  # (N, 3, 5, S, S) -> (N, 5)
        return self._standardise(clip.mean(dim=(1, 3, 4)))

    def forward_aud(self, mfcc: Tensor) -> Tensor:  # (N, 1, 13, 20) -> (N, 5): c0 of each frame's 4 columns
        return self._standardise(mfcc[:, 0, 0].unflatten(-1, (5, 4)).mean(-1))


def _loudness_clip(frames: int = 60, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A video whose brightness follows the loudness of its audio, frame by frame."""
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(frames, generator=g)  # (T,) in [0, 1]
    video = (40 + 180 * level).view(1, frames, 1, 1, 1).expand(1, frames, 3, 8, 8).round().to(torch.uint8)
    samples = torch.randn(frames, 640, generator=g) * (0.02 + 0.5 * level[:, None])
    return video, samples.flatten()[None]  # (1, T, 3, 8, 8), (1, 640 T)


@pytest.mark.parametrize("delay", [4, -4, 0])
def test_av_offset_sign_follows_syncnet_python(delay: int) -> None:
    video, audio = _loudness_clip()
    metric = SyncScore(net=_LoudnessSyncNet())
    metric.update(video, torch.roll(audio, delay * 640, dims=-1), 16000)
    assert metric.compute()["offset"].item() == -delay  # delayed audio -> negative offset


def test_offset_column_pairs_frame_with_audio_window() -> None:
    """Column ``k`` of the distances pairs frame ``i`` with audio ``i + k - vshift`` (the reference layout)."""
    torch.manual_seed(0)
    video = torch.randn(30, 16)
    audio = torch.roll(video, 3, dims=0)  # audio window j holds the sound of frame j - 3: audio delayed 3
    scores = MF.sync_scores_from_distances(MF.offset_distances(video, audio, vshift=5), vshift=5)
    assert scores["offset"].item() == -3


@pytest.fixture(scope="module")
def evaluators_run(trained_evaluators: dict) -> list[tuple[str, bool]]:
    """The criteria checked on the session's trained evaluators (conftest ``trained_evaluators``)."""
    return trained_evaluators["criteria"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_trained_syncnet_separates_sync_and_recovers_planted_offsets(evaluators_run: list[tuple[str, bool]]) -> None:
    sync_checks = [(text, ok) for text, ok in evaluators_run if not text.startswith("emotion accuracy")]
    assert len(sync_checks) == 3
    failed = [text for text, ok in sync_checks if not ok]
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_trained_emotion_classifier_reaches_the_accuracy_criterion(evaluators_run: list[tuple[str, bool]]) -> None:
    emotion_checks = [(text, ok) for text, ok in evaluators_run if text.startswith("emotion accuracy")]
    assert len(emotion_checks) == 1
    text, ok = emotion_checks[0]
    assert ok, text
