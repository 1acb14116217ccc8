"""``emoface plot`` and the drawing helpers of :mod:`emoface.visualize`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emoface.cli import main
from emoface.geometry.relocation import relocate
from emoface.io.arrays import save_npz
from emoface.io.media import probe
from emoface.visualize import (
    annotate_frames,
    blank_frames,
    canvas_size,
    draw_cues,
    image_grid,
    pick_frames,
    track_from_arrays,
)

CLIP = "happy/level_2/001"


@pytest.fixture(scope="module")
def small_cache(mini_mead_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three clips of one actor of the session's 64 px mini-MEAD, preprocessed (groundtruth backend)."""
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess

    cache = tmp_path_factory.mktemp("plot-cache")
    summary = preprocess(mini_mead_small, cache, PreprocessOptions(backend="groundtruth", size=64), actors=["M005"],
                         emotions=["happy"], progress=False)  # fmt: skip
    assert summary.failed == 0 and summary.ok_total == 3
    return cache


@pytest.fixture(scope="module")
def cue_file(small_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stage-1 cue file (docs/data_format.md keys) made from the cached clip's own cues."""
    with np.load(small_cache / "clips/M005" / f"{CLIP}.npz") as data:
        cues = {k: torch.from_numpy(data[k].copy()) for k in ("normalized_landmarks", "gaze", "rotation", "translation", "scale")}
        euler = data["euler"].copy()
    out = relocate(cues["normalized_landmarks"], cues["gaze"], cues["rotation"], cues["translation"], cues["scale"])
    path = tmp_path_factory.mktemp("cues") / "M005" / f"{CLIP}.npz"
    save_npz(path, {**{k: v.numpy() for k, v in cues.items()}, "euler": euler, "relocated": out.points.numpy(),
                    "gaze_vectors": out.gaze_vectors.numpy(), "clip": np.str_(f"M005/{CLIP}"),
                    "emotion": np.str_("happy"), "level": np.int64(2), "start": np.int64(0), "fps": np.int64(25)})  # fmt: skip
    return path


def plot(*args: str) -> int:
    return main(["plot", *args])


def check_outputs(stem: Path, frames: int, side: int, audio: bool) -> None:
    video, png = stem.with_name(stem.name + ".mp4"), stem.with_name(stem.name + ".png")
    assert video.is_file() and png.is_file()
    info = probe(video)
    assert info.num_frames == frames and (info.width, info.height) == (side, side)
    assert info.has_audio is audio
    with Image.open(png) as image:
        image.load()
        # 8 frames in 2 rows of 4, 2 px padding around and between the tiles
        assert image.size == (4 * (side + 2) + 2, 2 * (side + 2) + 2) and image.mode == "RGB"


def test_plot_cache_clip_writes_mp4_with_audio_and_png(small_cache: Path, tmp_path: Path) -> None:
    stem = tmp_path / "out" / "cache_clip"
    assert plot(str(small_cache / "clips/M005" / f"{CLIP}.npz"), "-o", str(stem)) == 0
    check_outputs(stem, frames=25, side=256, audio=True)  # 64 px crops drawn 4x larger


def test_plot_mini_mead_video_uses_its_ground_truth(mini_mead_small: Path, tmp_path: Path) -> None:
    stem = tmp_path / "video"
    assert plot(str(mini_mead_small / "M005/video/front" / f"{CLIP}.mp4"), "-o", f"{stem}.mp4", "--upscale", "2") == 0
    check_outputs(stem, frames=25, side=128, audio=True)


def test_plot_cue_file_on_blank_canvas_and_over_frames(cue_file: Path, small_cache: Path, tmp_path: Path) -> None:
    stem = tmp_path / "cues"
    assert plot(str(cue_file), "-o", str(stem), "--size", "64") == 0
    check_outputs(stem, frames=25, side=256, audio=False)

    # over the clip's own frames (audio taken from them): the relocated cues are the clip's own, so
    # the picture is the real clip's with magenta landmarks instead of green ones
    over = tmp_path / "over"
    clip = small_cache / "clips/M005" / f"{CLIP}.npz"
    assert plot(str(cue_file), "-o", str(over), "--frames", str(clip)) == 0
    check_outputs(over, frames=25, side=256, audio=True)
    real = tmp_path / "real"
    assert plot(str(clip), "-o", str(real), "--no-video") == 0
    assert not real.with_suffix(".mp4").exists()
    a = np.asarray(Image.open(over.with_suffix(".png")), dtype=np.float32)
    b = np.asarray(Image.open(real.with_suffix(".png")), dtype=np.float32)
    assert a.shape == b.shape
    changed = np.abs(a - b).max(-1) > 40
    changed[:20] = False  # the titles differ ("generated" / "cache")
    assert 0.005 < changed.mean() < 0.1  # landmark colour (and pupils a pixel apart), not the frames
    with np.load(cue_file) as cues, np.load(clip) as cached:
        generated, true = track_from_arrays(cues), track_from_arrays(cached)
    assert np.abs(generated.landmarks - true.landmarks).max() < 1e-2  # pixels
    assert np.abs(generated.gaze_vectors - true.gaze_vectors).max() < 1e-5
    assert np.abs(generated.pupils - true.pupils).max() < 2.0  # gaze model vs the image's dark blob


def test_plot_bad_inputs_exit_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               cue_file: Path) -> None:  # fmt: skip
    missing = tmp_path / "missing.npz"
    assert plot(str(missing)) == 2
    assert str(missing) in capsys.readouterr().err

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    assert plot(str(broken)) == 2
    assert str(broken) in capsys.readouterr().err

    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    assert plot(str(other)) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "something" in err

    video = tmp_path / "video.mp4"
    video.write_bytes(b"")
    assert plot(str(video)) == 2
    assert "no cues for this video" in capsys.readouterr().err

    assert plot(str(cue_file), "--frames", str(tmp_path / "nowhere.png"), "-o", str(tmp_path / "x")) == 2
    assert "nowhere.png" in capsys.readouterr().err
    assert plot(str(cue_file), "--audio", str(broken), "-o", str(tmp_path / "x")) == 2
    assert str(broken) in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))


def test_draw_helpers_shapes_and_content() -> None:
    landmarks = np.zeros((68, 3), np.float32)
    landmarks[:, 0] = np.linspace(20, 44, 68)
    landmarks[:, 1] = 32
    landmarks[36, 0], landmarks[45, 0] = 22, 42
    image = blank_frames(1, 64)[0]
    drawn = draw_cues(image, landmarks, gaze_vectors=np.array([[0.5, 0.0, -0.8], [0.5, 0.0, -0.8]]),
                      rotation=np.eye(3), translation=np.array([32.0, 32.0, 0.0]), scale=20.0)  # fmt: skip
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == blank_frames(1, 64)[0]).all()  # the input is not modified
    assert (drawn != image).any(axis=-1).sum() > 50
    assert image_grid([drawn] * 3, columns=2).shape == (2 * 66 + 2, 2 * 66 + 2, 3)
    assert list(pick_frames(25, 8)) == [0, 3, 7, 10, 14, 17, 21, 24]

    # cues only (no relocated points): relocated on the fly; canvas fits the face
    t = 5
    track = track_from_arrays({
        "normalized_landmarks": torch.zeros(t, 68, 3) + torch.linspace(-0.5, 0.5, 68)[:, None],
        "gaze": torch.zeros(t, 2, 2), "euler": torch.zeros(t, 3),
        "translation": torch.tensor([50.0, 50.0, 0.0]).repeat(t, 1), "scale": torch.full((t,), 30.0),
    })  # fmt: skip
    assert track.landmarks.shape == (t, 68, 3) and track.gaze_vectors.shape == (t, 2, 3)
    assert canvas_size(track) == 100
    assert annotate_frames(blank_frames(1, 100), track, upscale=2).shape == (t, 200, 200, 3)


def test_validation_pictures_grid_and_video(tmp_path: Path) -> None:
    """The S2L validation helpers: a real/generated grid and a side-by-side mp4 with audio."""
    from types import SimpleNamespace

    from emoface.lightning_modules._figures import cue_frames, log_image_grid, log_video

    t = 8
    normalized = torch.zeros(t, 68, 3) + torch.linspace(-0.5, 0.5, 68)[:, None]
    sample = {}
    for who, shift in (("true", 0.0), ("pred", 3.0)):
        sample.update({
            f"{who}_landmarks": normalized.numpy(), f"{who}_gaze": np.zeros((t, 2, 2), np.float32),
            f"{who}_rotation": np.tile(np.eye(3, dtype=np.float32), (t, 1, 1)),
            f"{who}_translation": np.tile(np.float32([32 + shift, 30, 0]), (t, 1)),
            f"{who}_scale": np.full(t, 25.0, np.float32),
        })  # fmt: skip
    grid, video = cue_frames(sample, frames=4, tile=128)
    side = video.shape[1]  # a 66 px canvas (about twice the head's position), upscaled to reach 128
    assert side == 132 and video.shape == (t, side, 2 * side, 3)
    assert grid.shape == (2 * (side + 2) + 2, 4 * (side + 2) + 2, 3)
    trainer = SimpleNamespace(loggers=[], default_root_dir=str(tmp_path))
    log_image_grid(trainer, grid, "val/cue_frames", 7, 1)
    assert (tmp_path / "figures/val_cue_frames_epoch001_step000007.png").is_file()
    path = log_video(trainer, video, "val/cue_video", 7, 1, audio=np.zeros(640 * t, np.float32))
    info = probe(path)
    assert path.name == "val_cue_video_epoch001_step000007.mp4" and info.num_frames == t and info.has_audio
