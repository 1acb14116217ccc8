"""Every metric whose network needs pretrained weights stops with a clear error when they are missing.

The error names the file, the folder it is looked up in (the torch hub cache under
``$TORCH_HOME``) and where the file comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from metrics_support import ALEXNET_FILE, FID_FILE, SYNCNET_FILE

from emoface.io.weights import MissingWeightsError
from emoface.metrics import FID, LPIPS, EmotionAccuracy, SyncScore


@pytest.mark.parametrize(
    ("build_metric", "file_name", "source_hint"),
    [
        (FID, FID_FILE, "pytorch-fid"),
        (SyncScore, SYNCNET_FILE, "syncnet_python"),
        (LPIPS, ALEXNET_FILE, "download.pytorch.org"),
        (EmotionAccuracy, "emotion_fan_mead.pth", "configs/emotion_classifier.yaml"),
    ],
    ids=["fid", "syncnet", "lpips", "emotion"],
)
def test_missing_weights_is_a_clear_error(
    build_metric: Callable[[], object], file_name: str, source_hint: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as info:
        build_metric()
    message = str(info.value)
    assert file_name in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert source_hint in message
