"""`emoface generate` and stage 2's `predict` as users meet them: tiny checkpoints trained by the
project's own configs (session fixture ``tiny_pipeline``), a real photo (scikit-image's astronaut)
with dlib's real landmark weights, speech at another sample rate, and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoface.cli import main
from emoface.io.media import probe, read_audio, read_video, write_audio

REPO = Path(__file__).resolve().parents[1]
GENERATE = str(REPO / "configs/generate.yaml")


def test_generate_makes_a_video_with_sound(tiny_pipeline: dict[str, Path], photo: Path, speech: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tiny_pipeline["root"])  # configs/generate.yaml names runs/... as `emoface fit` wrote them
    out = tmp_path / "out" / "talking.mp4"
    args = ["generate", "--config", GENERATE, "--audio", str(speech), "--image", str(photo), "--emotion", "happy",
            "--landmark-backend", "dlib", "--device", "cpu", "-o", str(out)]  # fmt: skip
    assert main([*args, "--save-cues"]) == 0
    assert "wrote" in capsys.readouterr().out

    duration = len(read_audio(speech)) / 16000
    video = read_video(out)
    assert abs(len(video.frames) - duration * 25) <= 1, (len(video.frames), duration)
    assert video.frames.shape[1:] == (64, 64, 3)  # the tiny renderer's side
    info = probe(out)
    assert info.has_audio
    assert abs(len(read_audio(out)) / 16000 - duration) <= 1 / 25

    cues = np.load(out.with_name("talking.cues.npz"))
    assert cues["relocated"].shape == (len(video.frames), 70, 3)
    assert str(cues["emotion"]) == "happy" and int(cues["level"]) == 3
    preview = read_video(out.with_name("talking_preview.mp4"))
    assert preview.frames.shape[2] == 2 * preview.frames.shape[1]  # frames | landmarks drawn over them

    # A fixed seed reproduces the video's cues.
    again = tmp_path / "again.mp4"
    assert main([*args[:-1], str(again), "--save-cues"]) == 0
    np.testing.assert_array_equal(np.load(again.with_name("again.cues.npz"))["relocated"], cues["relocated"])
    # Another seed samples another head and gaze motion (the tiny stage 1 is stochastic, noise_dim 4).
    other = tmp_path / "other.mp4"
    assert main([*args[:-1], str(other), "--save-cues", "--seed", "1"]) == 0
    assert not np.allclose(np.load(other.with_name("other.cues.npz"))["rotation"], cues["rotation"])


def test_pose_from_a_video_drives_the_head(tiny_pipeline: dict[str, Path], photo: Path, speech: Path,
                                           tmp_path: Path) -> None:  # fmt: skip
    import cv2
    from skimage import data

    from emoface.geometry.rotations import matrix_to_euler
    from emoface.io.media import write_video
    from emoface.pipeline import TalkingFacePipeline, load_image, load_speech, pose_from_video
    from emoface.preprocessing.backends import DlibBackend

    # A "head-turn" video: the astronaut photo rotated in the image plane, back and forth.
    image = data.astronaut()
    frames = []
    for angle in np.linspace(-12, 12, 10):
        matrix = cv2.getRotationMatrix2D((256, 200), float(angle), 1.0)
        frames.append(cv2.warpAffine(image, matrix, (512, 512)))
    driver = write_video(tmp_path / "driver.mp4", np.stack(frames), fps=25)

    pipeline = TalkingFacePipeline.from_checkpoints(
        tiny_pipeline["s2l"], tiny_pipeline["l2k"], tiny_pipeline["renderer"]
    )
    backend = DlibBackend()
    face = pipeline.prepare_photo(load_image(photo), backend)
    spoken = load_speech(speech)
    pose = pose_from_video(driver, backend, spoken.num_frames)
    assert pose["rotation"].shape == (spoken.num_frames, 3, 3)
    # dlib takes the suit's mission patch for a face in two frames where it misses the tilted one
    # (frame 0 among them); those frames are filled, not taken as a head jumping 250 px down.
    assert np.abs(pose["translation"]).max() < 1.0 and np.ptp(pose["scale"]) < 0.05, pose
    cues = pipeline.cues(spoken, face, "neutral", 1, pose=pose)
    roll = matrix_to_euler(torch.from_numpy(cues["rotation"]))[:, 2].numpy()
    # The in-plane rotation of the driver (24 degrees peak to peak) reaches the generated head.
    assert roll.max() - roll.min() > 15, roll


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_face", "no face found in the image"),
        ("silent", "silent"),
        ("unreadable_audio", "unreadable audio"),
        ("unknown_emotion", "unknown emotion 'joyful'; expected one of angry, contempt"),
        ("bad_level", "level 3 is not a level of 'neutral'; expected one of 1"),
        ("missing_checkpoint", "stage-1 (--s2l) checkpoint not found"),
        ("mismatched_checkpoint", "a LandmarksToKeypoints checkpoint was given as the stage-1 (--s2l) checkpoint"),
        ("missing_image", "image not found"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    case: str, message: str, tiny_pipeline: dict[str, Path], photo: Path, speech: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from PIL import Image

    options = {"--audio": str(speech), "--image": str(photo), "--emotion": "happy", "--level": "3",
               "--s2l": str(tiny_pipeline["s2l"]), "--l2k": str(tiny_pipeline["l2k"]),
               "--renderer": str(tiny_pipeline["renderer"])}  # fmt: skip
    if case == "no_face":
        blank = tmp_path / "wall.png"
        Image.fromarray(np.full((240, 320, 3), 200, np.uint8)).save(blank)
        options["--image"] = str(blank)
    elif case == "silent":
        options["--audio"] = str(write_audio(tmp_path / "quiet.wav", np.zeros(16000, np.float32)))
    elif case == "unreadable_audio":
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF not really a wave file")
        options["--audio"] = str(broken)
    elif case == "unknown_emotion":
        options["--emotion"] = "joyful"
    elif case == "bad_level":
        options["--emotion"] = "neutral"
    elif case == "missing_checkpoint":
        options["--s2l"] = str(tmp_path / "nope.ckpt")
    elif case == "mismatched_checkpoint":
        options["--s2l"] = str(tiny_pipeline["l2k"])
    elif case == "missing_image":
        options["--image"] = str(tmp_path / "nobody.png")
    out = tmp_path / "out.mp4"
    argv = [
        "generate",
        *[item for pair in options.items() for item in pair],
        "--landmark-backend",
        "dlib",
        "-o",
        str(out),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert not out.exists() and not list(tmp_path.glob("*.mp4"))


def test_largest_of_several_faces_is_used(tiny_pipeline: dict[str, Path]) -> None:
    import cv2
    from skimage import data

    from emoface.pipeline import TalkingFacePipeline
    from emoface.preprocessing.backends import DlibBackend

    image = data.astronaut()
    small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    both = np.zeros((512, 768, 3), np.uint8)
    both[:, :512] = image
    both[128:384, 512:] = small
    pipeline = TalkingFacePipeline.from_checkpoints(tiny_pipeline["s2l"], tiny_pipeline["l2k"])
    face = pipeline.prepare_photo(both, DlibBackend())
    assert face.faces_found == 2
    assert face.face_box[0] < 512  # the full-size face on the left
    assert face.crop.shape == (64, 64, 3)


def test_l2k_predict_renders_stage1_files(tiny_pipeline: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tiny_pipeline["root"])
    s2l = ["--config", str(REPO / "configs/s2l.yaml"), "--config", str(REPO / "configs/tests/tiny_s2l.yaml")]
    l2k = ["--config", str(REPO / "configs/l2k.yaml"), "--config", str(REPO / "configs/tests/tiny_l2k.yaml")]
    assert main(["predict", *s2l, "--ckpt_path", str(tiny_pipeline["s2l"]),
                 "--trainer.default_root_dir", str(tmp_path / "s2l")]) == 0  # fmt: skip
    stage1 = sorted((tmp_path / "s2l/predictions").rglob("*.npz"))
    assert len(stage1) == 3
    assert main(["predict", *l2k, "--ckpt_path", str(tiny_pipeline["l2k"]),
                 "--model.init_args.stage1_dir", str(tmp_path / "s2l/predictions"),
                 "--trainer.default_root_dir", str(tmp_path / "l2k")]) == 0  # fmt: skip
    assert main(["predict", *l2k, "--ckpt_path", str(tiny_pipeline["l2k"]),
                 "--trainer.default_root_dir", str(tmp_path / "l2k_real")]) == 0  # fmt: skip
    for cue_file in stage1:
        clip = cue_file.relative_to(tmp_path / "s2l/predictions").with_suffix(".mp4")
        video = tmp_path / "l2k/predictions" / clip
        frames = read_video(video).frames
        assert len(frames) == len(np.load(cue_file)["relocated"]) and frames.shape[1:] == (64, 64, 3)
        assert probe(video).has_audio
        # Without stage-1 files, each clip is rendered from its real cues.
        assert len(read_video(tmp_path / "l2k_real/predictions" / clip).frames) == len(frames)

    # The stage-1 files are what is rendered: a missing one names itself and how to make it.
    (stage1[0]).unlink()
    with pytest.raises(FileNotFoundError, match="no stage-1 prediction for clip"):
        main(["predict", *l2k, "--ckpt_path", str(tiny_pipeline["l2k"]),
              "--model.init_args.stage1_dir", str(tmp_path / "s2l/predictions"),
              "--trainer.default_root_dir", str(tmp_path / "l2k_again")])  # fmt: skip


def test_transparent_photo_is_composited_on_white(tmp_path: Path) -> None:
    from PIL import Image

    from emoface.pipeline import load_image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere, hidden where transparent
    rgba[:4, :, 3] = 255  # top half opaque
    rgba[4:, :, 3] = 0  # bottom half fully transparent
    rgba[4:, :4, 3] = 128  # a half-transparent corner
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_image(path)
    assert image.shape == (8, 8, 3)
    assert (image[:4] == [255, 0, 0]).all()  # opaque: as it is
    assert (image[4:, 4:] == 255).all()  # transparent: white, not the hidden red
    assert (np.abs(image[4:, :4].astype(int) - [255, 127, 127]) <= 1).all()  # half: blended with white


def _generate_args(tiny_pipeline: dict[str, Path], photo: Path, speech: Path, out: Path) -> list[str]:
    return ["generate", "--audio", str(speech), "--image", str(photo), "--emotion", "sad", "--level", "2",
            "--s2l", str(tiny_pipeline["s2l"]), "--l2k", str(tiny_pipeline["l2k"]),
            "--renderer", str(tiny_pipeline["renderer"]), "--landmark-backend", "dlib", "--device", "cpu",
            "--batch-size", "4", "--quiet", "-o", str(out)]  # fmt: skip


def test_frames_are_encoded_as_they_are_rendered(tiny_pipeline: dict[str, Path], photo: Path, speech: Path,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The video is encoded batch by batch: no call holds more than --batch-size frames."""
    from emoface.io.media import VideoWriter

    chunks: list[int] = []
    write = VideoWriter.write

    def spy(self: VideoWriter, frames: np.ndarray) -> None:
        chunks.append(len(frames))
        write(self, frames)

    monkeypatch.setattr(VideoWriter, "write", spy)
    out = tmp_path / "streamed.mp4"
    assert main(_generate_args(tiny_pipeline, photo, speech, out)) == 0
    frames = len(read_video(out).frames)
    assert max(chunks) <= 4 and sum(chunks) == frames and len(chunks) >= frames // 4


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_outputs_appear_together_or_not_at_all(
    failure: type[BaseException], tiny_pipeline: dict[str, Path], photo: Path, speech: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A failure (or Ctrl-C) while the preview is drawn leaves the earlier run's three files as they
    were and no partial file; Ctrl-C is one line and exit status 130."""
    import emoface.generate

    out = tmp_path / "talk.mp4"
    args = [*_generate_args(tiny_pipeline, photo, speech, out), "--save-cues"]
    assert main(args) == 0
    names = ["talk.mp4", "talk.cues.npz", "talk_preview.mp4"]
    before = {name: (tmp_path / name).read_bytes() for name in names}
    capsys.readouterr()

    preview = emoface.generate._preview
    calls = []

    def fail_on_second_chunk(*arguments: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:
            raise failure("stopped")
        return preview(*arguments)

    monkeypatch.setattr(emoface.generate, "_preview", fail_on_second_chunk)
    if failure is KeyboardInterrupt:
        assert main([*args, "--seed", "5"]) == 130
        assert capsys.readouterr().err.strip() == "emoface generate: interrupted (Ctrl-C)"
    else:
        with pytest.raises(RuntimeError):
            main([*args, "--seed", "5"])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names)  # no partial file left
    assert {name: (tmp_path / name).read_bytes() for name in names} == before
