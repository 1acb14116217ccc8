"""MEADDataModule: the batch contract, splits, filters, windows, determinism, DDP sharding, defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from emoface.datamodules import MEADDataModule
from emoface.datamodules.mead_dataset import FIELDS, RandomWindowSampler
from emoface.datamodules.splits import official_split, speaker_split
from emoface.emotions import EMOTIONS

ALL_FIELDS = list(FIELDS)


def _data(cache: Path, **kwargs: object) -> MEADDataModule:
    kwargs.setdefault("window", 8)
    kwargs.setdefault("batch_size", 4)
    data = MEADDataModule(cache_dir=str(cache), **kwargs)
    data.prepare_data()
    data.setup("fit")
    return data


def test_batches_follow_the_documented_contract(mead_cache_128: Path) -> None:
    data = _data(mead_cache_128, fields=ALL_FIELDS)
    batch = next(iter(data.train_dataloader()))
    b, t, h = 4, 8, 128
    expected = {
        "emotion": ((b,), torch.long), "level": ((b,), torch.long), "start": ((b,), torch.long),
        "audio": ((b, 4 * t, 39), torch.float32), "waveform": ((b, 640 * t), torch.float32),
        "landmarks": ((b, t, 68, 3), torch.float32), "normalized_landmarks": ((b, t, 68, 3), torch.float32),
        "rotation": ((b, t, 3, 3), torch.float32), "euler": ((b, t, 3), torch.float32),
        "translation": ((b, t, 3), torch.float32), "scale": ((b, t), torch.float32),
        "gaze": ((b, t, 2, 2), torch.float32), "gaze_confidence": ((b, t, 2), torch.float32),
        "frames": ((b, t, 3, h, h), torch.uint8), "ref_landmarks": ((b, 68, 3), torch.float32),
        "ref_normalized_landmarks": ((b, 68, 3), torch.float32), "ref_frame": ((b, 3, h, h), torch.uint8),
        "source_frame": ((b, 3, h, h), torch.uint8), "source_index": ((b,), torch.long),
        "source_euler": ((b, 3), torch.float32), "source_relocated": ((b, 70, 3), torch.float32),
        "source_landmarks": ((b, 68, 3), torch.float32),
    }  # fmt: skip
    assert set(batch) == set(expected) | {"clip"}
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    assert len(batch["clip"]) == b and all(len(c.split("/")) == 4 for c in batch["clip"])
    for i, clip in enumerate(batch["clip"]):
        actor, emotion, level, _ = clip.split("/")
        assert EMOTIONS[batch["emotion"][i]] == emotion and f"level_{batch['level'][i]}" == level
    assert data.emotions == EMOTIONS and data.num_emotions == 8

    only = _data(mead_cache_128, fields=["audio"])
    assert set(next(iter(only.val_dataloader()))) == {"emotion", "level", "clip", "start", "audio"}
    with pytest.raises(ValueError, match="unknown fields"):
        MEADDataModule(cache_dir=str(mead_cache_128), fields=["lips"])


def test_items_are_the_cached_rows_of_the_window(mead_cache_128: Path) -> None:
    from emoface.preprocessing.store import ClipFile

    data = _data(mead_cache_128, fields=["audio", "landmarks", "reference"])
    dataset = data.datasets["val"]
    item = dataset[3]
    entry = next(e for e in dataset.entries if e.clip_id == item["clip"])
    clip = ClipFile(entry.path)
    start = item["start"]
    assert torch.equal(item["landmarks"], torch.from_numpy(clip["landmarks"][start : start + 8].copy()))
    assert torch.equal(item["audio"], torch.from_numpy(clip["audio"][4 * start : 4 * start + 32].copy()))
    # The reference is a neutral clip of the same actor (another clip), its middle frame.
    ref = dataset.references.candidates(entry)[0]
    assert ref.actor == entry.actor and ref.emotion == "neutral" and ref.clip_id != entry.clip_id
    ref_clip = ClipFile(ref.path)
    assert torch.equal(item["ref_landmarks"], torch.from_numpy(ref_clip["landmarks"][ref.num_frames // 2].copy()))


def test_speaker_split_uses_held_out_actors(mead_cache_128: Path, mini_mead_128: Path) -> None:
    data = _data(mead_cache_128)
    actors = {name: {e.actor for e in data.splits[name]} for name in ("train", "val", "test")}
    recorded = json.loads((mini_mead_128 / "mini_mead.json").read_text())["split"]
    assert {name: sorted(a) for name, a in actors.items()} == recorded
    assert not (actors["train"] & actors["test"]) and not (actors["train"] & actors["val"])
    custom = _data(mead_cache_128, test_actors=["M005"], val_actors=["W011"])
    assert {e.actor for e in custom.splits["test"]} == {"M005"} and {e.actor for e in custom.splits["train"]} == {"M007"}
    # Real MEAD defaults: the four EAT test speakers.
    real = [f"M{n:03d}" for n in (1, 3, 5, 30)] + [f"W{n:03d}" for n in (9, 11, 15, 20)]
    split = speaker_split(real)
    assert split["test"] == ["M003", "M030", "W009", "W015"] and split["val"] == ["W020"]
    with pytest.raises(ValueError, match="not in the cache"):
        speaker_split(real, test_actors=["M999"])


def test_official_split_rule() -> None:
    clips = [(f"M001/neutral/level_1/{k:03d}", "M001", "neutral", 1) for k in range(1, 41)]
    clips += [(f"M001/happy/level_3/{k:03d}", "M001", "happy", 3) for k in range(1, 31)]
    split = official_split(clips)
    neutral_test = sorted(c for c, s in split.items() if s == "test" and "neutral" in c)
    happy_test = sorted(c for c, s in split.items() if s == "test" and "happy" in c)
    assert neutral_test == [f"M001/neutral/level_1/{k:03d}" for k in range(31, 41)]
    assert happy_test == [f"M001/happy/level_3/{k:03d}" for k in range(25, 31)]
    assert split["M001/happy/level_3/024"] == "val" and split["M001/happy/level_3/001"] == "train"


def test_size_is_the_cache_crop_side(mead_cache_128: Path) -> None:
    data = _data(mead_cache_128)  # the default size (256) given, a 128 px cache read
    assert data.size == 128


def test_official_split_and_filters_on_the_cache(mead_cache_128: Path) -> None:
    data = _data(mead_cache_128, split="official", emotions=["happy", "sad"], levels=[3])
    # mini-MEAD groups hold one sentence here, so the (documented) small-group rule puts it in test.
    assert len(data.splits["test"]) == 3 * 2 and not data.splits["train"]
    for entries in data.splits.values():
        assert all(e.emotion in ("happy", "sad") and e.level == 3 for e in entries)
    train, test = {e.clip_id for e in data.splits["train"]}, {e.clip_id for e in data.splits["test"]}
    assert not train & test


def test_windows_train_random_eval_non_overlapping_predict_whole_clips(mead_cache_128: Path) -> None:
    data = _data(mead_cache_128, fields=["landmarks"], window=8, stride=4)
    val = data.datasets["val"]
    per_clip: dict[str, list[int]] = {}
    for k, start in val.items:
        per_clip.setdefault(val.entries[k].clip_id, []).append(start)
    assert all(starts == [0, 8, 16] for starts in per_clip.values())  # 25 frames -> 3 windows of 8

    predict = data.predict_dataloader()
    batch = next(iter(predict))
    assert batch["landmarks"].shape == (1, 25, 68, 3) and len(predict) == len(data.splits["test"])

    def starts(loader) -> list[tuple[str, int]]:  # noqa: ANN001
        return [(c, int(s)) for b in loader for c, s in zip(b["clip"], b["start"])]

    first = starts(data.train_dataloader())
    assert len(first) == len(data.datasets["train"])
    assert len(set(first)) > 0.5 * len(first)
    assert any(s % 4 for _, s in first)  # random offsets, not only the stride grid
    again = _data(mead_cache_128, fields=["landmarks"], window=8, stride=4)
    assert starts(again.train_dataloader()) == first  # deterministic for a seed
    workers = _data(mead_cache_128, fields=["landmarks"], window=8, stride=4, num_workers=2)
    assert starts(workers.train_dataloader()) == first  # ... whatever the worker count
    other = _data(mead_cache_128, fields=["landmarks"], window=8, stride=4, seed=1)
    assert starts(other.train_dataloader()) != first
    loader = again.train_dataloader()
    loader.sampler.set_epoch(1)
    assert starts(loader) != first  # a new epoch draws new windows


def test_distributed_ranks_split_the_training_windows(mead_cache_128: Path) -> None:
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    data = _data(mead_cache_128, fields=["landmarks"])
    sampler = RandomWindowSampler(len(data.datasets["train"]), seed=0)
    ranks = []
    for rank in range(2):
        sampler.set_epoch(0)
        wrapped = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False)
        wrapped.set_epoch(0)
        ranks.append(list(wrapped))
    assert len(ranks[0]) == len(ranks[1])
    items = {tuple(i) for r in ranks for i in r}
    assert len({i for i, _ in items}) == len(data.datasets["train"])  # every window on some rank


def test_default_builds_and_preprocesses_the_embedded_mini_mead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOFACE_CACHE", str(tmp_path / "user-cache"))
    data = MEADDataModule(
        window=8, batch_size=2, size=64, mini_mead_speakers=3, mini_mead_clips=1, mini_mead_seconds=0.6,
        fields=["audio", "normalized_landmarks"],
    )  # fmt: skip
    assert str(data.cache_dir).startswith(str(tmp_path / "user-cache"))
    data.prepare_data()
    data.setup("fit")
    assert (data.cache_dir / "manifest.csv").is_file() and (data.raw_root / "mini_mead.json").is_file()
    batch = next(iter(data.train_dataloader()))
    assert batch["normalized_landmarks"].shape == (2, 8, 68, 3)


def test_init_args_work_from_yaml(mead_cache_128: Path) -> None:
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    parser = ArgumentParser(parser_mode="omegaconf")
    parser.add_subclass_arguments(LightningDataModule, "data")
    config = parser.parse_string(
        f"""
data:
  class_path: emoface.datamodules.MEADDataModule
  init_args:
    cache_dir: {mead_cache_128}
    split: speaker
    emotions: [happy]
    levels: [1, 2]
    window: 4
    fields: [audio, pose]
    batch_size: 2
"""
    )
    data = parser.instantiate_classes(config).data
    assert isinstance(data, MEADDataModule) and data.window == 4 and data.split == "speaker"
    data.setup("fit")
    assert next(iter(data.train_dataloader()))["rotation"].shape == (2, 4, 3, 3)
