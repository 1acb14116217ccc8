"""The real face-alignment path, offline: stand-in weights under face-alignment's own file names.

The stand-ins are face-alignment's own networks (FAN-4, ResNetDepth, S3FD) with random weights,
saved the way the real files are (a plain FAN state dict; ``{"state_dict": {"module.*": ...}}``
for the depth net; a plain S3FD state dict) under the names the installed version fetches, in a
temporary ``TORCH_HOME``. The S3FD face-score biases are raised so that every frame yields a face
box; everything else (detection, crops, heat maps, depth) is face-alignment's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoface.preprocessing.backends import (
    FaceAlignmentBackend,
    FaceAlignmentWeightsError,
    make_stand_in_weights,
)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("torch-home")
    make_stand_in_weights(home / "hub" / "checkpoints")
    return home


def test_missing_weights_error_names_the_files_and_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(FaceAlignmentWeightsError) as error:
        FaceAlignmentBackend(device="cpu")
    message = str(error.value)
    assert str(tmp_path / "empty-home" / "hub" / "checkpoints") in message
    for name in ("3DFAN4-7835d9f11d.pth.tar", "depth-2a464da4ea.pth.tar", "s3fd-619a316812.pth"):
        assert name in message
    assert not (tmp_path / "empty-home" / "hub" / "checkpoints").exists() or not any(
        (tmp_path / "empty-home" / "hub" / "checkpoints").iterdir()
    )  # nothing was downloaded


def test_batched_backend_runs_face_alignment_end_to_end(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, mini_mead_small: Path
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    from emoface.io import read_video

    frames = read_video(mini_mead_small / "M005/video/front/neutral/level_1/001.mp4", fps=25).frames[:3]
    backend = FaceAlignmentBackend(device="cpu", batch_size=2, flip_input=False)
    landmarks, found = backend.landmarks_from_chunks([frames[:2], frames[2:]])
    assert landmarks.shape == (3, 68, 3) and found.all() and np.isfinite(landmarks).all()

    # Batching across frames changes nothing: equal to face-alignment's own per-image call.
    boxes = backend.detect(frames)
    for t in (0, 2):
        reference = backend.model.get_landmarks_from_image(frames[t], detected_faces=[boxes[t]])[0]
        np.testing.assert_allclose(landmarks[t], reference, rtol=1e-4, atol=1e-3)


def test_faces_of_a_photo_for_generate(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`emoface generate`'s photo path: every detected face, largest first, each with face-alignment's
    own landmarks for its box (stand-in weights: the stand-in detector finds boxes everywhere)."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    from skimage import data

    image = data.astronaut()[:256, 128:384]
    backend = FaceAlignmentBackend(device="cpu", flip_input=False)
    boxes = backend.face_boxes(image)
    assert len(boxes), "the stand-in detector finds boxes"
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert (np.diff(areas) <= 0).all()  # largest first
    (first,) = backend.faces(image, boxes=boxes[:1])
    assert first.landmarks.shape == (68, 3) and np.isfinite(first.landmarks).all()
    reference = backend.model.get_landmarks_from_image(image, detected_faces=[boxes[0].astype(np.float64)])[0]
    np.testing.assert_allclose(first.landmarks, reference, rtol=1e-4, atol=1e-3)


def test_preprocess_with_the_face_alignment_backend(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    from emoface.datamodules.mini_mead import make_mini_mead
    from emoface.preprocessing.manifest import read_manifest
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess
    from emoface.preprocessing.store import ClipFile

    raw = make_mini_mead(tmp_path / "raw", speakers=1, clips=1, seconds=0.2, size=64, workers=1)
    options = PreprocessOptions(backend="face_alignment", size=64, device="cpu", batch_size=5, min_frames=4)
    summary = preprocess(raw, tmp_path / "cache", options, emotions=["neutral"], progress=False)
    assert summary.done == 1 and summary.failed == 0, summary.failures
    (row,) = read_manifest(tmp_path / "cache")
    assert row["status"] == "ok" and row["backend"] == "face_alignment" and int(row["frames"]) == 5
    clip = ClipFile(tmp_path / "cache" / row["file"])
    assert clip["landmarks"].shape == (5, 68, 3) and np.isfinite(np.asarray(clip["normalized_landmarks"])).all()
    assert clip.frames(0, 5).shape == (5, 64, 64, 3)
