"""Each video aligned by its own face: planted rows made from raw MEAD-layout mini-MEAD clips.

The method folders hold the *raw* mini-MEAD videos (``<actor>/video/front/...``: the whole
256 x 256 frame, not the preprocessed cache's 128 px face crop the ground truth is read from, as
with real MEAD, whose raw frames are larger than its crops), framed in other ways: an exact copy of the file, a letterboxed copy (scaled 0.75 and padded into a wider
frame, off centre), a zoomed copy (the central 80 % scaled back up), a blurred copy, and a copy
folder missing a clip. With every video aligned by the landmarks dlib finds on its own frames
(the default ``crop: own``), the copies score like the ground truth whatever their framing.

    python -m pytest tests/test_benchmark_alignment.py -k planted_rows -s    # prints the planted-row table
    python tests/test_benchmark_alignment.py    # the table with the own crop and with the ground-truth warp
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import pytest
import torch

from emoface.datamodules.method_videos import (
    BUILTIN_CLIP_LISTS,
    BenchmarkConfigError,
    BenchmarkDataModule,
    eat100_clip_ids,
    eat_full_clips,
)
from emoface.io import read_video
from emoface.lightning_modules.benchmark import Benchmark, mean_centred_landmark_distance
from emoface.metrics.face_crop import crop_template, eat_template_points, similarity_to_template

CLIPS = ("angry/level_3/001", "neutral/level_1/001")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _name(clip_id: str) -> str:
    actor, emotion, level, n = clip_id.split("/")
    return f"{actor}_{emotion[:3]}_{level.removeprefix('level_')}_{n}"


def letterbox(frame: np.ndarray) -> np.ndarray:
    """The frame scaled by 0.75 and padded (black) into a wider frame (4:3), off centre."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (round(0.75 * w), round(0.75 * h)), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, round(4 * h / 3), 3), np.uint8)
    y0, x0 = h // 16, (out.shape[1] - small.shape[1]) * 3 // 4
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return out


def zoom(frame: np.ndarray) -> np.ndarray:
    """The central 80 % of the frame scaled back to its size."""
    h, w = frame.shape[:2]
    y0, x0 = round(0.1 * h), round(0.1 * w)
    return cv2.resize(frame[y0 : h - y0, x0 : w - x0], (w, h), interpolation=cv2.INTER_LINEAR)


def blur(frame: np.ndarray) -> np.ndarray:
    """Gaussian blur of sigma 3 px (about 1.7 px of the 128 crop)."""
    return cv2.GaussianBlur(frame, (13, 13), 3.0)


def _write_frames(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:04d}.png"), frame[..., ::-1])


@pytest.fixture(scope="module")
def tiny_mead(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A mini-MEAD tree of 256 px frames holding the test actor's ``CLIPS`` and one clip of the training and
    of the validation actor (a few seconds to make), and its cache of 128 px face crops (the groundtruth
    backend)."""
    import json

    from emoface.datamodules.mini_mead import (
        GENERATOR_VERSION,
        ClipJob,
        MiniMEADConfig,
        actor_names,
        make_clip,
        speaker_split,
    )
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess

    raw, cache = tmp_path_factory.mktemp("mini-mead-256"), tmp_path_factory.mktemp("mead-cache-256-128")
    config = MiniMEADConfig(speakers=3, clips=1, seconds=1.0, size=256, seed=0)
    actors = actor_names(3)
    split = speaker_split(actors)
    jobs = [(split["test"][0], *c.split("/")[:2]) for c in CLIPS]
    jobs += [(split["train"][0], "angry", "level_3"), (split["val"][0], "angry", "level_3")]  # 3 actors: a real split
    for actor, emotion, level in jobs:
        make_clip(ClipJob(str(raw), actor, emotion, int(level.removeprefix("level_")), 1, config))
    meta = {"dataset": "mini-MEAD", "generator_version": GENERATOR_VERSION, "actors": actors, "split": split}
    (raw / "mini_mead.json").write_text(json.dumps(meta))
    summary = preprocess(raw, cache, PreprocessOptions(backend="groundtruth", size=128), progress=False)
    assert summary.failed == 0 and summary.ok_total == len(jobs)
    return {"raw": raw, "cache": cache, "test_actor": split["test"][0], "train_actor": split["train"][0]}


@pytest.fixture(scope="module")
def planted(tiny_mead: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Method folders made from the raw clips of the test actor (2 clips)."""
    root = tmp_path_factory.mktemp("planted")
    actor = tiny_mead["test_actor"]
    ids = [f"{actor}/{c}" for c in CLIPS]
    for k, clip_id in enumerate(ids):
        _, emotion, level, n = clip_id.split("/")
        raw = tiny_mead["raw"] / actor / "video" / "front" / emotion / level / f"{n}.mp4"
        name = _name(clip_id)
        for folder in ("copy", *(["missing"] if k == 0 else [])):
            (root / folder).mkdir(exist_ok=True)
            shutil.copyfile(raw, root / folder / f"{name}.mp4")  # the raw file itself, byte for byte
        frames = read_video(raw).frames
        for kind, change in (("letterbox", letterbox), ("zoom", zoom), ("blur", blur)):
            _write_frames(root / kind / name, [change(f) for f in frames])
    (root / "clips.txt").write_text("\n".join(_name(c) for c in ids) + "\n")
    methods = [
        {"name": "copy", "folder": str(root / "copy"), "pattern": "mead"},
        {"name": "letterbox", "folder": str(root / "letterbox"), "pattern": "frames"},
        {"name": "zoom", "folder": str(root / "zoom"), "pattern": "frames"},
        {"name": "blur", "folder": str(root / "blur"), "pattern": "frames"},
        {"name": "missing", "folder": str(root / "missing"), "pattern": "mead"},
    ]
    return {"root": root, "ids": ids, "methods": methods, "cache": tiny_mead["cache"]}


def _bench(planted: dict, out: Path, methods: list[dict] | None = None, **options) -> Benchmark:
    dm = BenchmarkDataModule(methods=planted["methods"] if methods is None else methods,
                             clip_list=str(planted["root"] / "clips.txt"), cache_dir=str(planted["cache"]))  # fmt: skip
    settings = dict(metrics=["psnr", "ssim", "lmd"], out_dir=str(out), image_size=128, sync_size=64,
                    landmarks="dlib", align_detector="dlib", gt_cache_dir=str(out / "gt"), progress_seconds=0)  # fmt: skip
    system = Benchmark(**(settings | options))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)  # fmt: skip
    trainer.test(system, datamodule=dm, verbose=False)
    return system


@pytest.mark.timeout(600)
def test_planted_rows_score_like_the_ground_truth_whatever_their_framing(planted: dict, tmp_path: Path) -> None:
    system = _bench(planted, tmp_path / "own")
    md = (tmp_path / "own" / "results.md").read_text()
    print("\n" + md)
    rows = {r["method"]: r for r in system.results}
    still = rows["source_frame"]
    # The zoom's 1.25x bilinear upscale softens the lips as a blur does, and dlib reads them about a
    # pixel off: mini-MEAD generator 3 (its videos the same in every build) scores M-LMD copy 0.72,
    # letterbox 0.56, zoom 1.05, blur 1.81, the still source frame 3.31; the zoom scored 0.74 in one
    # build of generator 2 (its videos differed from build to build) and 1.46 with lossless videos.
    max_mouth_error = {"copy": 1.0, "letterbox": 1.0, "zoom": 1.25, "missing": 1.0}
    for name, bound in max_mouth_error.items():
        assert rows[name]["psnr"] >= still["psnr"] + 3.0, (name, rows[name]["psnr"], still["psnr"])
        assert rows[name]["m_lmd"] < bound, (name, rows[name]["m_lmd"])
        assert rows[name]["ssim"] > still["ssim"], name
    assert rows["blur"]["psnr"] <= rows["copy"]["psnr"] - 1.0
    assert rows["copy"]["face_coverage"] == 1.0 and rows["ground_truth"]["face_frames_searched"] == 50
    # Honest rows: scored / expected, the short row marked, its missing clip counted and named.
    assert rows["missing"]["clips"] == 1 and rows["missing"]["missing"] == 1 and rows["missing"]["expected"] == 2
    assert "| missing | 1/2 ⚠ | 1 | 0 | 0 | 0 | 100.0% |" in md and "| copy | 2/2 | 0 | 0 | 0 | 0 | 100.0% |" in md
    assert "PSNR (dB) ↑" in md and "M-LMD (px) ↓" in md and "pixels of the 128 px crop" in md
    assert "face frames" in md and "⚠ scored on fewer clips than the ground truth row (2)" in md
    report = (tmp_path / "own" / "report.md").read_text()
    assert f"- missing: 1: {planted['ids'][1]}" in report.split("## missing")[1]
    protocol = json.loads((tmp_path / "own" / "protocol.json").read_text())
    assert protocol["protocol"] == "emoface" and protocol["face_crop"]["mode"] == "own"
    assert protocol["face_crop"]["detector"]["backend"] == "dlib"
    assert {r["method"]: r["clips"] for r in protocol["rows"]}["missing"] == 1
    with open(tmp_path / "own" / "per_clip.csv") as handle:
        per_clip = [r for r in csv.DictReader(handle) if r["method"] == "letterbox"]
    assert [r["faces"] for r in per_clip] == ["25/25", "25/25"]


def test_mean_centred_lmd_ignores_a_shift_and_keeps_pixels() -> None:
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.normal(64, 10, (1, 3, 68, 2)))
    shifted = target + torch.tensor([5.0, -3.0])  # the whole face moved: no distance
    assert mean_centred_landmark_distance(shifted, target)["m_lmd"].item() == pytest.approx(0, abs=1e-9)
    opened = target.clone()
    opened[..., 57, 1] += 4.0  # the lower lip 4 px lower: the mouth centre moves 0.2 px
    out = mean_centred_landmark_distance(opened, target)
    expected_mouth = (np.hypot(0, 4 - 0.2) + 19 * 0.2) / 20
    expected_face = (np.hypot(0, 4 - 4 / 68) + 67 * 4 / 68) / 68
    assert out["m_lmd"].item() == pytest.approx(expected_mouth) and out["f_lmd"].item() == pytest.approx(expected_face)


class _ScriptedDetector:
    """A detector stand-in: the face template placed by a known similarity on every frame, except the
    frames listed as faceless."""

    name = "scripted"

    def __init__(self, faceless: set[int], template: np.ndarray) -> None:
        self.faceless, self.template, self.calls = faceless, template, 0

    def landmarks_from_chunks(self, chunks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        frames = np.concatenate(list(chunks))
        out = np.zeros((len(frames), 68, 3), np.float32)
        found = np.zeros(len(frames), bool)
        for i, frame in enumerate(frames):
            t = int(frame[0, 0, 0])  # the frame's index is written in its first pixel
            if t not in self.faceless:
                out[i, :, :2] = 2.0 * self.template + [10.0 + t, 20.0]  # the face drifts right, 1 px a frame
                found[i] = True
        return out, found


@pytest.mark.parametrize("rule", ["interpolate", "drop"])
def test_frames_without_a_face_follow_the_rule(rule: str) -> None:
    template = crop_template("mean_face", 64)
    frames = torch.zeros(10, 3, 160, 160, dtype=torch.uint8)
    frames[:, :, 0, 0] = torch.arange(10, dtype=torch.uint8)[:, None]
    system = Benchmark(metrics=["psnr"], image_size=64, sync_size=64, align_smooth=0, align_stabilise=False,
                       no_face=rule, landmark_detector=_ScriptedDetector({3, 4}, template), progress_seconds=0)  # fmt: skip
    out = system._own_alignment(frames)
    assert (out["found"], out["total"], out["ok"]) == (8, 10, True)
    # Frame t maps its face (2 x template + (10 + t, 20)) back onto the template.
    expected = lambda t: np.array([[0.5, 0, -(10.0 + t) / 2], [0, 0.5, -10.0]])  # noqa: E731
    if rule == "interpolate":
        assert out["keep"].tolist() == list(range(10))
        for t in range(10):  # frames 3 and 4 interpolated between 2 and 5: the same drift
            np.testing.assert_allclose(out["img"][t], expected(t), atol=1e-6)
    else:
        assert out["keep"].tolist() == [0, 1, 2, 5, 6, 7, 8, 9]
        for k, t in enumerate(out["keep"]):
            np.testing.assert_allclose(out["img"][k], expected(t), atol=1e-6)
    few = Benchmark(metrics=["psnr"], image_size=64, sync_size=64, no_face=rule, progress_seconds=0,
                    landmark_detector=_ScriptedDetector(set(range(6)), template))  # fmt: skip
    assert few._own_alignment(frames)["ok"] is False  # a face in 4 of 10 frames < min_face_coverage 0.5


# ------------------------------------------------------------------------------ the EAT preset


def test_eat_preset_ships_eats_clips_and_template() -> None:
    ids = eat100_clip_ids()
    assert len(ids) == 100 and len(set(ids)) == 100
    by_actor = {a: sum(c.startswith(a) for c in ids) for a in ("M003", "M030", "W009", "W015")}
    assert by_actor == {"M003": 19, "M030": 29, "W009": 23, "W015": 29}
    assert all(("/neutral/level_1/" in c) or ("/level_3/" in c and "/neutral/" not in c) for c in ids)
    assert ids[:2] == ["W015/sad/level_3/005", "W015/surprised/level_3/025"]  # EAT's file order
    if (SHARED / "eat_mead100.txt").is_file():  # the project's copy of EAT's list, where it is present
        from emoface.datamodules.method_videos import read_clip_list

        assert ids == read_clip_list(SHARED / "eat_mead100.txt")
        np.testing.assert_array_equal(eat_template_points(), np.loadtxt(SHARED / "eat_template_68.txt"))
    assert BUILTIN_CLIP_LISTS["eat100"] is eat100_clip_ids
    import yaml

    config = yaml.safe_load(Path("configs/benchmark/eat.yaml").read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    assert data["clip_list"] == "eat100" and model["template"] == "eat" and model["protocol_name"] == "eat"
    assert (model["crop"], model["warp"], model["no_face"], model["align_smooth"], model["align_stabilise"]) == (
        "own", "skimage", "drop", 0, False)
    assert (model["fid_network"], model["fid_frames"], model["lmd_normalize"]) == ("torchvision", 5, "mean_centred")
    assert model["emotion_labels"][:2] == ["happy", "angry"]


def test_eat_full_set_rule() -> None:
    from emoface.datamodules.mead_dataset import ClipEntry
    from emoface.emotions import EMOTIONS

    entries = [ClipEntry(f"M003/{e}/level_{k}/{n:03d}", "M003", e, k, "", 50) for e in EMOTIONS for k in (1, 2, 3)
               for n in (1, 2) if e != "neutral" or k == 1]  # fmt: skip
    picked = eat_full_clips(entries)
    assert len(picked) == 7 * 2 + 2 and all((p.level == 1) == (p.emotion == "neutral") for p in picked)


@pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")  # EAT's own call, kept as it is
def test_eat_template_crops_are_eats_163_warp_cut_to_128() -> None:
    """crop_template("eat", 128) with a 128 warp equals skimage's 163 warp cut [1:129, 1:129], and the
    similarity is skimage's SimilarityTransform.estimate(template[27:45], landmarks[27:45])."""
    from skimage.data import astronaut
    from skimage.transform import SimilarityTransform, warp

    from emoface.metrics.face_crop import EAT_ALIGN_POINTS, warp_faces_skimage

    base = eat_template_points()
    rng = np.random.default_rng(1)
    c, s = 2.2 * np.cos(0.15), 2.2 * np.sin(0.15)
    landmarks = base @ np.array([[c, -s], [s, c]]).T + [120.0, 90.0] + rng.normal(0, 1.5, (68, 2))
    image = astronaut()
    reference = SimilarityTransform()
    reference.estimate(base[27:45], landmarks[27:45])
    expected = np.round(warp(image, reference, output_shape=(163, 163), order=1) * 255)[1:129, 1:129]
    matrices = similarity_to_template(landmarks[None], crop_template("eat", 128), EAT_ALIGN_POINTS)
    got = warp_faces_skimage(torch.from_numpy(image[None]).permute(0, 3, 1, 2).contiguous(), matrices, 128)
    assert np.abs(got[0].permute(1, 2, 0).numpy().astype(float) - expected).max() <= 1.0
    # The 224 crop: points 27-44 centred at (112, 112) of a 256 warp, cut [1:225, 1:225].
    sync = crop_template("eat", 224, "sync")
    np.testing.assert_allclose(sync[27:45].mean(0), [111.0, 111.0])
    np.testing.assert_allclose(sync - sync[0], base - base[0])


def test_torchvision_inception_for_eats_fid(tmp_path: Path, monkeypatch) -> None:
    """EAT's FID network: torchvision's InceptionV3 from the hub cache file (stand-in weights of the real
    names and shapes), 2048-d features in pytorch-fid's layout; a missing file names itself."""
    from torchvision.models import inception_v3

    from emoface.io.weights import MissingWeightsError
    from emoface.metrics import functional as MF
    from emoface.metrics.fid import build_torchvision_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(MissingWeightsError, match="inception_v3_google-0cc3c7bd.pth"):
        build_torchvision_inception()
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
               hub / "inception_v3_google-0cc3c7bd.pth")  # fmt: skip
    net = build_torchvision_inception()
    frames = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    features = MF.inception_features(net, frames)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])
    system = Benchmark(metrics=["fid"], fid_network="torchvision", crop="ground_truth", progress_seconds=0)
    assert "inception_v3_google-0cc3c7bd.pth sha256:" in system.weight_files["fid_inception_torchvision"]


@pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")  # EAT's own call, kept as it is
@pytest.mark.timeout(600)
def test_eat_protocol_on_planted_videos_follows_its_facts(planted: dict, tmp_path: Path) -> None:
    """The EAT preset's crop and metrics on one clip: the copy row's PSNR, SSIM and LMD equal the reference
    computation step by step (dlib on every frame of both videos, skimage's similarity estimate of
    points 27-44 onto EAT's template, skimage's bilinear warp to 163 cut [1:129, 1:129], frames without
    a face dropped, resampled to the shorter video, skimage's PSNR and SSIM, dlib on the 128 crops,
    mean-centred mouth and face points)."""
    import yaml
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from skimage.transform import SimilarityTransform, warp

    from emoface.preprocessing.backends import DlibBackend
    from emoface.preprocessing.store import ClipFileCache

    clip_id = planted["ids"][0]
    planted = dict(planted, root=tmp_path)
    (tmp_path / "clips.txt").write_text(_name(clip_id) + "\n")
    copy = [m for m in planted["methods"] if m["name"] == "copy"]
    preset = yaml.safe_load(Path("configs/benchmark/eat.yaml").read_text())["model"]["init_args"]
    keys = ("protocol_name", "template", "align_points", "align_smooth", "align_stabilise", "align_detector", "no_face",
            "min_face_coverage", "warp", "landmarks", "lmd_normalize", "lmd_smooth", "lmd_detect_size", "crop",
            "image_size")  # fmt: skip
    system = _bench(planted, tmp_path / "eat", methods=copy, **{k: preset[k] for k in keys})
    rows = {r["method"]: r for r in system.results}
    md = (tmp_path / "eat" / "results.md").read_text()
    assert md.startswith("# MEAD benchmark: protocol eat")
    protocol = json.loads((tmp_path / "eat" / "protocol.json").read_text())
    assert protocol["protocol"] == "eat" and "EAT's base_68" in protocol["face_crop"]["template"]

    # The reference, step by step.
    dlib = DlibBackend()
    base = eat_template_points()

    def crops(frames: np.ndarray) -> list[np.ndarray]:
        points, found = dlib.landmarks_from_chunks([frames])
        out = []
        for frame, lm, ok in zip(frames, points, found):
            if ok:  # a frame without a face is dropped
                tform = SimilarityTransform()
                tform.estimate(base[27:45], lm[27:45, :2].astype(np.float64))
                out.append(np.round(warp(frame, tform, output_shape=(163, 163), order=1) * 255)[1:129, 1:129]
                           .astype(np.uint8))  # fmt: skip
        return out

    actor, emotion, level, n = clip_id.split("/")
    data = ClipFileCache().get(str(planted["cache"] / "clips" / actor / emotion / level / f"{n}.npz"))
    gt = crops(data.frames(0, len(data["landmarks"])))
    mine = crops(read_video(Path(copy[0]["folder"]) / f"{_name(clip_id)}.mp4").frames)
    count = min(len(gt), len(mine))
    gi = np.linspace(0, len(gt) - 1, count).round().astype(int)
    mi = np.linspace(0, len(mine) - 1, count).round().astype(int)
    pairs = [(mine[j], gt[i]) for i, j in zip(gi, mi)]
    psnr = np.mean([peak_signal_noise_ratio(b, a) for a, b in pairs])
    ssim = np.mean([structural_similarity(b, a, channel_axis=-1) for a, b in pairs])
    assert rows["copy"]["psnr"] == pytest.approx(psnr, abs=0.05)
    assert rows["copy"]["ssim"] == pytest.approx(ssim, abs=2e-3)
    lm_m, f_m = dlib.landmarks_from_chunks([np.stack([a for a, _ in pairs])])
    lm_g, f_g = dlib.landmarks_from_chunks([np.stack([b for _, b in pairs])])
    keep = f_m & f_g
    reference = mean_centred_landmark_distance(torch.from_numpy(lm_m[keep])[None], torch.from_numpy(lm_g[keep])[None])
    assert rows["copy"]["m_lmd"] == pytest.approx(float(reference["m_lmd"][0]), abs=0.02)
    assert rows["copy"]["f_lmd"] == pytest.approx(float(reference["f_lmd"][0]), abs=0.02)


# ------------------------------------------------------------------------------ config errors


def test_config_errors_exit_2_with_one_line_before_any_work(tiny_mead: dict, tmp_path: Path) -> None:
    """Through ``emoface test``: a typo in a method entry and a clip list naming a training clip."""
    from emoface.datamodules import MEADDataModule

    train = MEADDataModule(cache_dir=str(tiny_mead["cache"])).split_entries()["train"][0].clip_id
    (tmp_path / "train.txt").write_text(_name(train) + "\n")
    cases = [
        (["--data.init_args.methods", "[{name: A, folder: x, patern: eat}]"],
         "methods[0] (A): unknown key 'patern'; the keys are name, folder, pattern, audio"),
        (["--data.init_args.clip_list", str(tmp_path / "train.txt")],
         f"1 clips are outside the test clips of the speaker split, e.g. {train}"),
    ]  # fmt: skip
    for override, message in cases:
        out = tmp_path / "run"
        command = [sys.executable, "-m", "emoface.cli", "test", "--config", "configs/benchmark/mead.yaml",
                   "--config", "configs/tests/tiny_benchmark.yaml", "--data.init_args.cache_dir", str(tiny_mead["cache"]),
                   "--trainer.default_root_dir", str(out), "--model.init_args.metrics", "[psnr]",
                   "--model.init_args.out_dir", str(out / "benchmark"), "--model.init_args.gt_cache_dir",
                   str(out / "gt"), *override]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
        lines = [line for line in done.stderr.splitlines() if line.startswith("emoface test: error:")]
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(lines) == 1 and message in lines[0], done.stderr[-2000:]
        assert "Traceback" not in done.stderr and not out.exists()  # nothing written


@pytest.mark.parametrize(
    ("methods", "clip_list", "message"),
    [
        ([{"name": "A", "folder": "x"}, {"name": "B", "folder": "y", "pattern": "pcav"}], None,
         r"methods\[1\] \(B\): unknown pattern 'pcav'; shipped patterns: eat, mead, makeittalk, pcavs, frames"),
        ([{"name": "A", "folder": "x", "audio": "mine"}], None, "audio must be 'ground_truth' or 'own', got 'mine'"),
        ([{"name": "A", "folder": "x"}, {"name": "A", "folder": "y"}], None, "the name 'A' is used twice"),
        ([{"name": "A"}], None, "missing key 'folder'"),
        ([{"name": "A", "folder": "x", "pattern": "{actor}_{clip}.mp4"}], None, "bad pattern"),
        ([], "{root}/nowhere.txt", r"nowhere.txt: no such file \(built-in lists: mead100, eat_full, eat100\)"),
        ([], "{root}/bad.txt", "cannot read clip 'not a clip'"),
        ([], "{root}/empty.txt", "names no clip"),
        ([], "{root}/binary.txt", "unreadable"),
        ([], "{root}/absent.txt", "1 of 1 clips are not in the cache"),
        ([], "eat100", "100 of 100 clips are not in the cache"),
    ],
)  # fmt: skip
def test_config_errors_name_the_value(tiny_mead: dict, tmp_path: Path, methods: list, clip_list: str | None,
                                      message: str) -> None:  # fmt: skip
    (tmp_path / "bad.txt").write_text("not a clip\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "absent.txt").write_text("M003_ang_3_999\n")
    clip_list = None if clip_list is None else clip_list.replace("{root}", str(tmp_path))
    with pytest.raises(BenchmarkConfigError, match=message):
        BenchmarkDataModule(methods=methods, clip_list=clip_list, cache_dir=str(tiny_mead["cache"]))


# ------------------------------------------------------------------------------ progress


def test_progress_lines_with_eta_while_a_clip_is_slow(capsys) -> None:
    import time

    from emoface.lightning_modules.benchmark import _Heartbeat

    beat = _Heartbeat(shard=4, total=8, world=2, every=0.05)
    beat.now, beat.row = "M003/angry/level_3/001", "EAT"
    beat.start()
    time.sleep(0.2)  # no clip finished yet: lines keep coming
    beat.advance()
    time.sleep(0.2)
    beat.stop()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("benchmark:")]
    assert len(lines) >= 4
    assert lines[0].startswith("benchmark: 0/4 clips done (rank 0's share of 8 clips over 2 ranks)")
    assert "ETA ?" in lines[0] and "now M003/angry/level_3/001 EAT" in lines[0]
    assert "1/4 clips done" in lines[-1] and "ETA 0:00:0" in lines[-1]


def _planted_tables(root: Path) -> str:
    """results.md of the planted rows with the own crop and with the ground truth's warp, for the record."""

    class _Factory:  # pytest's tmp_path_factory, outside pytest
        def mktemp(self, name: str) -> Path:
            path = root / name
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            return path

    factory = _Factory()
    tiny = tiny_mead.__wrapped__(factory)
    rows = planted.__wrapped__(tiny, factory)
    text = []
    for crop in ("own", "ground_truth"):
        out = factory.mktemp(f"out-{crop}")
        _bench(rows, out, crop=crop)
        text.append(f"## crop: {crop}\n\n" + (out / "results.md").read_text())
    return "\n".join(text)


if __name__ == "__main__":  # python tests/test_benchmark_alignment.py [folder]: the planted-row tables
    import tempfile

    print(_planted_tables(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="planted-"))))
