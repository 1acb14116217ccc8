"""The dlib backend with its real weights (installed offline by face-recognition-models) on a real photo.

scikit-image's ``data.astronaut()`` is a real photograph with one face; mini-MEAD's rendered faces
are synthetic, so the agreement with the ground truth checked here is the one measured by
benchmarks/landmark_backends.py (see docs/data_format.md, "Landmark backends").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoface.preprocessing.backends import DLIB_PREDICTOR_FILE, DlibBackend, DlibWeightsError, make_backend
from emoface.preprocessing.features import estimate_pose


@pytest.fixture(scope="module")
def backend() -> DlibBackend:
    return DlibBackend()  # the predictor is parsed once per process (a few seconds)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def check_plausible_face(landmarks: np.ndarray, box: np.ndarray) -> None:
    """iBUG-68 geometry of an upright, roughly frontal face inside its detector box."""
    x1, y1, x2, y2 = box[:4]
    margin = 0.25 * (x2 - x1)  # dlib's boxes are tight: the jaw and chin lie just outside
    assert (landmarks[:, 0] > x1 - margin).all() and (landmarks[:, 0] < x2 + margin).all()
    assert (landmarks[:, 1] > y1 - margin).all() and (landmarks[:, 1] < y2 + margin).all()
    y = landmarks[:, 1]
    brows, eyes, nose_tip, mouth, chin = y[17:27].mean(), y[36:48].mean(), y[30], y[48:68].mean(), y[8]
    assert brows < eyes < nose_tip < mouth < chin
    right_eye, left_eye = landmarks[36:42, 0].mean(), landmarks[42:48, 0].mean()
    assert right_eye < landmarks[30, 0] < left_eye  # the subject's right eye is on the image left
    assert landmarks[48, 0] < landmarks[54, 0] and landmarks[0, 0] < landmarks[16, 0]
    assert 0.3 < (left_eye - right_eye) / (x2 - x1) < 0.9
    assert np.argmin(landmarks[:, 2]) in range(27, 36)  # the nose is nearest to the camera
    assert np.abs(landmarks[:, 2]).max() < (x2 - x1)  # depth in pixel units, the face's scale


def test_missing_predictor_error_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / DLIB_PREDICTOR_FILE
    monkeypatch.setenv("EMOFACE_DLIB_PREDICTOR", str(missing))
    with pytest.raises(DlibWeightsError) as error:
        make_backend("dlib")
    message = str(error.value)
    assert str(missing) in message and "face-recognition-models" in message and "commercial" in message
    broken = tmp_path / DLIB_PREDICTOR_FILE
    broken.write_bytes(b"not a model")
    with pytest.raises(DlibWeightsError, match="unreadable"):
        DlibBackend(predictor_path=broken)


def test_one_face_in_a_real_photo(backend: DlibBackend, astronaut: np.ndarray) -> None:
    faces = backend.faces(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (68, 3) and face.landmarks.dtype == np.float32
    np.testing.assert_array_equal(face.landmarks[:, :2], face.landmarks_2d)
    x1, y1, x2, y2, score = face.box
    assert 150 < x1 < x2 < 300 and 50 < y1 < y2 < 200 and score > 0.5  # the astronaut's face
    check_plausible_face(face.landmarks, face.box)
    euler = estimate_pose(face.landmarks[None])["euler"][0]
    assert np.abs(euler).max() < 20.0  # a roughly frontal portrait
    # A grey-level copy and an RGBA copy give the same face. (In grey, dlib also takes the mission
    # patch on the suit for a face, with a score near its threshold: 0.03 against 1.5.)
    gray = [f for f in backend.faces(np.asarray(astronaut.mean(-1), dtype=np.uint8)) if f.box[4] > 0.5]
    assert len(gray) == 1 and np.abs(gray[0].landmarks_2d - face.landmarks_2d).mean() < 2.0
    rgba = np.concatenate([astronaut, np.full_like(astronaut[..., :1], 255)], -1)
    np.testing.assert_array_equal(backend.faces(rgba)[0].landmarks, face.landmarks)


def test_faces_are_ordered_largest_first(backend: DlibBackend, astronaut: np.ndarray) -> None:
    import cv2

    head = astronaut[40:220, 130:310]  # (180, 180, 3) around the face
    small = cv2.resize(head, (110, 110), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 560, 3), 127, dtype=np.uint8)
    canvas[150:260, 40:150] = small  # the smaller face first in reading order
    canvas[60:240, 300:480] = head
    faces = backend.faces(canvas)
    assert len(faces) == 2
    big, little = faces
    assert big.area > little.area
    assert big.box[0] > 280 and little.box[0] < 160  # each box on its own pasted face
    for face in faces:
        check_plausible_face(face.landmarks, face.box)
    # The small face is the big one scaled by 110/180: its eye distance follows.
    ratio = np.linalg.norm(little.landmarks[45, :2] - little.landmarks[36, :2]) / np.linalg.norm(
        big.landmarks[45, :2] - big.landmarks[36, :2]
    )
    assert abs(ratio - 110 / 180) < 0.08


def test_no_face(backend: DlibBackend) -> None:
    rng = np.random.default_rng(0)
    blank = np.full((120, 160, 3), 200, dtype=np.uint8)
    noise = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert backend.faces(blank) == [] and backend.faces(noise) == []
    assert backend.detect(blank).shape == (0, 5)
    landmarks, found = backend.landmarks_from_chunks([np.stack([blank, noise])])
    assert landmarks.shape == (2, 68, 3) and not found.any() and not landmarks.any()
    with pytest.raises(ValueError, match="uint8"):
        backend.faces(blank.astype(np.float32))


def test_preprocess_mini_mead_with_dlib_agrees_with_groundtruth(mini_mead_128: Path, tmp_path: Path) -> None:
    """The pipeline with ``backend="dlib"`` on 4 clips, against the groundtruth backend's cache.

    Tolerances come from benchmarks/landmark_backends.py on the whole 128 px mini-MEAD (66 clips):
    detection 98.5 % of frames, 2.2 px mean point error (eye distance 52 px), pose error yaw 2.0,
    pitch 3.5, roll 0.9 degrees (mean); here with about a 2x margin.
    """
    from emoface.io.arrays import load_npz
    from emoface.preprocessing import manifest as mf
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess

    subset = dict(actors=["M005"], emotions=["neutral", "happy"], progress=False)
    caches = {}
    for name in ("dlib", "groundtruth"):
        caches[name] = tmp_path / name
        summary = preprocess(mini_mead_128, caches[name], PreprocessOptions(backend=name, size=128), **subset)
        assert summary.failed == 0 and summary.ok_total == 4, summary.failures
    rows = mf.read_manifest(caches["dlib"], status="ok")
    assert {row["backend"] for row in rows} == {"dlib"}

    found_total = frames_total = 0
    errors, pose_errors = [], []
    for row in rows:
        ours, truth = load_npz(caches["dlib"] / row["file"]), load_npz(caches["groundtruth"] / row["file"])
        assert ours["landmarks"].shape == truth["landmarks"].shape

        def to_source(arrays) -> np.ndarray:
            x0, y0, side, size = arrays["crop_box"]
            points = arrays["landmarks"] * (side / size)
            return points[..., :2] + np.array([x0, y0])

        found = ours["face_found"]
        found_total, frames_total = found_total + found.sum(), frames_total + len(found)
        errors.append(np.linalg.norm(to_source(ours) - to_source(truth), axis=-1)[found].mean(-1))
        pose_errors.append(np.abs(ours["euler"] - truth["euler"])[found])
    errors_px, pose = np.concatenate(errors), np.concatenate(pose_errors)
    assert found_total / frames_total > 0.9
    assert errors_px.mean() < 4.5 and np.median(errors_px) < 4.0
    assert (pose.mean(0) < np.array([5.0, 7.0, 2.5])).all(), pose.mean(0)


def test_auto_is_face_alignment_only_when_its_weights_are_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emoface.preprocessing.backends import default_backend, make_stand_in_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))
    assert default_backend() == "dlib"
    make_stand_in_weights(tmp_path / "home" / "hub" / "checkpoints")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    assert default_backend() == "face_alignment"
