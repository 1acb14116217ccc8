"""Stage 2 and generate against a frozen LivePortrait renderer: a tiny LivePortrait-shaped weights
folder (the public files' layout, small sizes recorded in its models.json, random weights written
here), `emoface fit` of LandmarksToKeypoints on it, and `emoface generate --renderer FOLDER`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoface.cli import main
from emoface.datamodules import MEADDataModule
from emoface.io.media import read_video
from emoface.lightning_modules import LandmarksToKeypoints
from emoface.lightning_modules.landmarks_to_keypoints import BATCH_FIELDS
from emoface.networks import KeypointMapper
from emoface.networks.live_portrait import build_networks, save_live_portrait
from emoface.rendering import LivePortraitRenderer, load_renderer

REPO = Path(__file__).resolve().parents[1]
L2K = ["--config", str(REPO / "configs/l2k.yaml"), "--config", str(REPO / "configs/tests/tiny_l2k.yaml")]
LP_MAPPER = ["--model.init_args.mapper.init_args.num_kp", "21", "--model.init_args.mapper.init_args.scale", "true"]

# LivePortrait's architecture at sizes for 64 px frames (public: 256 px in, these widths x8 or more).
TINY_LIVE_PORTRAIT = {
    "appearance_feature_extractor": {
        "block_expansion": 8, "num_down_blocks": 2, "max_features": 32, "reshape_channel": 4, "reshape_depth": 8,
        "num_resblocks": 1,
    },
    "motion_extractor": {"depths": [1, 1, 1, 1], "dims": [8, 16, 16, 32]},
    "warping_module": {
        "block_expansion": 4, "max_features": 32, "num_down_blocks": 2, "reshape_channel": 4,
        "dense_motion_params": {"block_expansion": 4, "max_features": 16, "num_blocks": 2, "reshape_depth": 8, "compress": 2},
    },
    "spade_generator": {"max_features": 32, "block_expansion": 4, "out_channels": 8, "nhidden": 16},
}  # fmt: skip


@pytest.fixture(scope="module")
def live_portrait_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random tiny LivePortrait networks written as the public release lays them out."""
    torch.manual_seed(0)
    nets = build_networks(TINY_LIVE_PORTRAIT)
    with torch.no_grad():  # a scale near 1, so the posed keypoints spread like real ones
        nets.motion_extractor.detector.fc_scale.bias.fill_(1.0)
        nets.motion_extractor.detector.fc_scale.weight.mul_(0.01)
    return save_live_portrait(tmp_path_factory.mktemp("live-portrait") / "pretrained_weights", nets)


def test_renderer_of_either_family_from_a_path(live_portrait_folder: Path) -> None:
    renderer = load_renderer(live_portrait_folder, batch_size=3)
    assert isinstance(renderer, LivePortraitRenderer) and renderer.input_size is None  # sizes from models.json
    assert (renderer.num_kp, renderer.has_scale) == (21, True)
    assert renderer.parameter_shapes == {"pitch": (66,), "yaw": (66,), "roll": (66,), "t": (3,), "exp": (63,), "scale": (1,)}
    torch.manual_seed(1)
    source, driving = torch.rand(3, 64, 64), torch.rand(5, 3, 64, 64)
    state = renderer.prepare_source(source)
    params = renderer.estimate_driving(driving)
    assert {key: tuple(value.shape) for key, value in params.items()} == {
        "pitch": (5,), "yaw": (5,), "roll": (5,), "t": (5, 3), "exp": (5, 63), "scale": (5, 1)
    }  # fmt: skip
    frames = renderer.render(state, renderer.driving_keypoints(state, **params))
    assert frames.shape == (5, 3, 128, 128)  # twice the input side, as 256 -> 512 at the public sizes
    # Batches of 3 draw what one call for all frames draws.
    single = LivePortraitRenderer.from_folder(live_portrait_folder, batch_size=5).reconstruct(source, driving)
    torch.testing.assert_close(frames, single, atol=1e-4, rtol=1e-3)


def test_targets_come_from_the_frozen_motion_extractor(live_portrait_folder: Path, mead_cache_128: Path) -> None:
    torch.manual_seed(0)
    system = LandmarksToKeypoints(
        KeypointMapper(num_kp=21, scale=True, hidden=32, num_blocks=1, kernel_size=3),
        renderer_checkpoint=str(live_portrait_folder), image_weight=1.0,
    )  # fmt: skip
    dm = MEADDataModule(cache_dir=str(mead_cache_128), fields=list(BATCH_FIELDS), window=4, batch_size=2, size=64)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    out = system(batch)
    renderer = system.frozen_renderer()
    expected = renderer.motion_extractor(batch["frames"].flatten(0, 1).float() / 255)
    torch.testing.assert_close(out["target"]["scale"], expected["scale"])
    assert out["pred"]["pitch"].shape == (2, 4, 66) and out["pred"]["scale"].shape == (2, 4, 1)
    assert out["kp_pred"].shape == (2, 4, 21, 3)
    losses = system.losses(batch, out)
    assert {"scale", "image", "keypoints"} <= set(losses)
    sum(losses.values()).backward()
    assert system.mapper.delta_scale.weight.grad is not None  # the scale head is trained

    # A face-vid2vid-shaped mapper against this renderer: one error with the fix.
    wrong = LandmarksToKeypoints(KeypointMapper(hidden=16, num_blocks=1), renderer_checkpoint=str(live_portrait_folder))
    with pytest.raises(ValueError, match="num_kp: 21 and scale: true"):
        wrong.load_renderer()


def test_fast_dev_run_and_generate_with_live_portrait(
    live_portrait_folder: Path, tiny_pipeline: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image
    from skimage import data

    renderer = ["--model.init_args.renderer_checkpoint", str(live_portrait_folder)]
    assert main(["fit", *L2K, *renderer, *LP_MAPPER, "--trainer.fast_dev_run", "1",
                 "--trainer.default_root_dir", str(tmp_path / "dev")]) == 0  # fmt: skip
    # A short real fit for a checkpoint generate can use.
    root = tmp_path / "l2k_lp"
    assert main(["fit", *L2K, *renderer, *LP_MAPPER, "--trainer.max_epochs", "1",
                 "--trainer.default_root_dir", str(root)]) == 0  # fmt: skip
    l2k = root / "checkpoints/last.ckpt"
    assert l2k.is_file()

    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    speech = tiny_pipeline["root"] / "speech.wav"
    from emoface.datamodules.mini_mead import make_identity, synthesize_speech
    from emoface.io.media import write_audio

    wave = synthesize_speech(np.random.default_rng(0), 1.0, make_identity("M003", 0), "happy", 3, 16000)[0]
    write_audio(speech, wave, sample_rate=16000)
    common = ["generate", "--audio", str(speech), "--image", str(photo), "--emotion", "happy", "--s2l",
              str(tiny_pipeline["s2l"]), "--l2k", str(l2k), "--landmark-backend", "dlib", "--device", "cpu"]  # fmt: skip
    out = tmp_path / "lp.mp4"
    assert main([*common, "--renderer", str(live_portrait_folder), "--save-cues", "-o", str(out)]) == 0
    video = read_video(out)
    assert video.frames.shape[1:] == (128, 128, 3)  # LivePortrait's 2x output of the 64 px crop
    assert abs(len(video.frames) - 25) <= 1
    preview = read_video(out.with_name("lp_preview.mp4")).frames
    assert preview.shape[2] == 2 * preview.shape[1]  # frames | landmarks drawn at the frames' scale

    # The face-vid2vid renderer for a LivePortrait-trained stage 2: one clear line, no video.
    capsys.readouterr()
    wrong = tmp_path / "wrong.mp4"
    assert main([*common, "--renderer", str(tiny_pipeline["renderer"]), "-o", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "21 keypoints" in err and len(err.strip().splitlines()) == 1, err
    assert not wrong.exists()
