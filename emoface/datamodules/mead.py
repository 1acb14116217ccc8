"""``MEADDataModule``: the one data module both stages train on.

From YAML under LightningCLI::

    data:
      class_path: emoface.datamodules.MEADDataModule
      init_args: {window: 32, fields: [audio, normalized_landmarks, pose, gaze, reference], batch_size: 16}

With neither ``cache_dir`` nor ``raw_root`` it builds the embedded mini-MEAD and preprocesses it
(groundtruth backend) into ``$EMOFACE_CACHE`` (default ``~/.cache/emoface``) on first use. Batches
are dicts whose keys and shapes are documented in docs/data_format.md; the emotion index order is
:data:`emoface.emotions.EMOTIONS` (also :attr:`MEADDataModule.emotions`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from emoface.datamodules.mead_dataset import (
    FIELDS,
    ClipEntry,
    MEADWindows,
    RandomWindowSampler,
    check_fields,
    entries_from_rows,
)
from emoface.datamodules.splits import SPLITS, official_split, speaker_split
from emoface.emotions import EMOTIONS, emotion_index
from emoface.preprocessing import manifest as mf

log = logging.getLogger(__name__)

DEFAULT_FIELDS: tuple[str, ...] = ("audio", "landmarks", "normalized_landmarks", "pose", "gaze", "reference")


def user_cache_root() -> Path:
    """``$EMOFACE_CACHE`` or ``~/.cache/emoface``."""
    return Path(os.environ.get("EMOFACE_CACHE") or Path.home() / ".cache" / "emoface")


class MEADDataModule(LightningDataModule):
    """MEAD (or mini-MEAD) windows for both stages.

    Args:
        cache_dir: a preprocessed cache (``manifest.csv``). ``None``: derived from ``raw_root``
            (``$EMOFACE_CACHE/preprocessed/<name>-<hash>``) or, without a raw root, the embedded
            mini-MEAD cache.
        raw_root: a MEAD tree; preprocessed in :meth:`prepare_data` when the cache has no manifest.
        split: ``speaker`` (held-out actors) or ``official`` (per-utterance).
        val_actors, test_actors: speaker split actors (defaults: see :func:`speaker_split`).
        emotions: keep only these emotions (names or 3-letter codes); ``None`` keeps all.
        levels: keep only these intensity levels.
        window: frames per training/evaluation window ``T``.
        stride: distance between training window starts (default ``window // 2``); each epoch
            moves every start by a random offset below the stride. Validation and test use
            non-overlapping windows; prediction yields whole clips, one per batch.
        fields: what a batch holds (see docs/data_format.md): any of ``audio``, ``waveform``,
            ``landmarks``, ``normalized_landmarks``, ``pose``, ``gaze``, ``frames``,
            ``reference``, ``reference_frame``, ``source_frame``.
        batch_size: windows per batch (prediction: 1).
        num_workers: DataLoader worker processes.
        seed: training window order and offsets.
        backend: preprocessing backend for ``raw_root`` (``auto``: ``groundtruth`` when the root is
            a mini-MEAD tree, else ``face_alignment`` when its weights are in the torch hub cache,
            else ``dlib``).
        size: crop side when preprocessing (and the mini-MEAD frame size). An existing cache's own
            crop side (its ``cache.json``) replaces it at ``setup``, so ``size`` always names the
            side of the crops served (stage-1 prediction files record it).
        preprocess_workers: worker processes for preprocessing.
        mini_mead_speakers, mini_mead_clips, mini_mead_seconds: the embedded mini-MEAD's size.
        mini_mead_free_motion: the embedded mini-MEAD with free head motion (VoxCeleb-like turns,
            tilts, moves and zoom; see :func:`~emoface.datamodules.mini_mead.free_head_motion`),
            for the renderer and stage 2; stage 1 keeps the default (MEAD-like) data. Its frames
            are drawn at :func:`~emoface.datamodules.mini_mead.free_motion_frame_size` of ``size``
            (the head is smaller in them) and it has its own cache.
        crop: the preprocessing crop (:class:`~emoface.preprocessing.pipeline.PreprocessOptions`):
            ``clip``, ``track`` or ``auto`` (``track`` for a free-motion mini-MEAD, else ``clip``).
            Another crop than ``auto`` gets its own cache folder.
        pin_memory: DataLoader ``pin_memory``.
    """

    emotions: tuple[str, ...] = EMOTIONS
    """The emotion index order of ``batch["emotion"]``."""

    def __init__(
        self,
        cache_dir: str | None = None,
        raw_root: str | None = None,
        split: str = "speaker",
        val_actors: list[str] | None = None,
        test_actors: list[str] | None = None,
        emotions: list[str] | None = None,
        levels: list[int] | None = None,
        window: int = 32,
        stride: int | None = None,
        fields: list[str] = list(DEFAULT_FIELDS),  # noqa: B006 - jsonargparse needs a list default
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        backend: str = "auto",
        size: int = 256,
        preprocess_workers: int = 0,
        mini_mead_speakers: int = 6,
        mini_mead_clips: int = 2,
        mini_mead_seconds: float = 2.0,
        mini_mead_free_motion: bool = False,
        crop: str = "auto",
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if window < 1 or batch_size < 1:
            raise ValueError("window and batch_size must be >= 1")
        self.save_hyperparameters()
        self.fields = check_fields(fields)
        self.split = split
        self.val_actors = list(val_actors) if val_actors else None
        self.test_actors = list(test_actors) if test_actors else None
        self.emotion_filter = {EMOTIONS[emotion_index(e)] for e in emotions} if emotions else None
        self.level_filter = {int(level) for level in levels} if levels else None
        self.window = window
        self.stride = stride or max(1, window // 2)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.backend = backend
        self.size = size
        self.preprocess_workers = preprocess_workers
        self.mini_mead = {"speakers": mini_mead_speakers, "clips": mini_mead_clips, "seconds": mini_mead_seconds,
                          "free_motion": mini_mead_free_motion}
        self.pin_memory = pin_memory
        if crop not in ("auto", "clip", "track"):
            raise ValueError(f"crop must be auto, clip or track, got {crop!r}")
        self.crop = crop
        self.raw_root = Path(raw_root).expanduser() if raw_root else None
        self._build_mini_mead = False
        if cache_dir:
            self.cache_dir = Path(cache_dir).expanduser()
        elif self.raw_root is not None:
            digest = hashlib.sha1(str(self.raw_root.resolve()).encode()).hexdigest()[:10]
            suffix = "" if crop == "auto" else f"-{crop}"
            self.cache_dir = user_cache_root() / "preprocessed" / f"{self.raw_root.name}-{digest}-{size}{suffix}"
        else:
            from emoface.datamodules.mini_mead import FREE_MOTION_VERSION, GENERATOR_VERSION

            # The generator version is in the key: a cache made by an older generator is never reused.
            tag = f"v{GENERATOR_VERSION}-s{mini_mead_speakers}-c{mini_mead_clips}-t{mini_mead_seconds:g}-{size}"
            self._build_mini_mead = True
            cache_name = "cache" if self._crop() == "clip" and not mini_mead_free_motion else f"cache-{self._crop()}"
            if mini_mead_free_motion:  # another tree (and a cache named by its crop)
                tag = f"{tag}-free{FREE_MOTION_VERSION}"
            self.raw_root = user_cache_root() / "mini-mead" / tag / "raw"
            self.cache_dir = user_cache_root() / "mini-mead" / tag / cache_name
        self.splits: dict[str, list[ClipEntry]] = {}
        self.datasets: dict[str, MEADWindows] = {}

    # ------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the mini-MEAD (default) and preprocess the raw root when the cache has no manifest."""
        if (self.cache_dir / mf.MANIFEST).is_file():
            return
        if self.raw_root is None:
            raise FileNotFoundError(f"no manifest in {self.cache_dir} and no raw_root to preprocess")
        if self._build_mini_mead and not (self.raw_root / "mini_mead.json").is_file():
            from emoface.datamodules.mini_mead import make_mini_mead

            log.info("building the embedded mini-MEAD in %s", self.raw_root)
            make_mini_mead(self.raw_root, size=self._frame_size(), progress=True, **self.mini_mead)
        from emoface.preprocessing.pipeline import PreprocessOptions, format_summary, preprocess

        backend = self.backend
        if backend == "auto":
            backend = "groundtruth" if (self.raw_root / "mini_mead.json").is_file() else "auto"
        summary = preprocess(
            self.raw_root,
            self.cache_dir,
            PreprocessOptions(backend=backend, size=self.size, crop=self._crop()),
            workers=self.preprocess_workers,
            progress=True,
        )
        log.info("%s", format_summary(summary, self.cache_dir))
        if summary.exit_code:
            raise RuntimeError(f"preprocessing {self.raw_root} produced no usable clip (see {self.cache_dir})")

    def _frame_size(self) -> int:
        """Frame side of the embedded mini-MEAD this module builds."""
        if self.mini_mead["free_motion"]:
            from emoface.datamodules.mini_mead import free_motion_frame_size

            return free_motion_frame_size(self.size)
        return self.size

    def _crop(self) -> str:
        """The preprocessing crop: ``crop``, or for ``auto`` on the embedded mini-MEAD ``track``
        with free motion and ``clip`` without (on a ``raw_root``, ``auto``: preprocess decides)."""
        if self.crop != "auto" or not self._build_mini_mead:
            return self.crop
        return "track" if self.mini_mead["free_motion"] else "clip"

    def _entries(self) -> tuple[list[ClipEntry], list[ClipEntry]]:
        """(all usable clips, clips after the emotion/level filters)."""
        everything = entries_from_rows(self.cache_dir, mf.read_manifest(self.cache_dir, status="ok"))
        kept = [
            e
            for e in everything
            if (self.emotion_filter is None or e.emotion in self.emotion_filter)
            and (self.level_filter is None or e.level in self.level_filter)
        ]
        return everything, kept

    def split_entries(self) -> dict[str, list[ClipEntry]]:
        """Clips of each split (``train``, ``val``, ``test``) after the filters."""
        everything, kept = self._entries()
        if not kept:
            raise RuntimeError(f"no usable clip in {self.cache_dir} matches emotions={self.emotion_filter}, "
                               f"levels={self.level_filter}")  # fmt: skip
        if self.split == "speaker":
            source = mf.read_config(self.cache_dir).get("source", {})
            actors = speaker_split(
                sorted({e.actor for e in everything}),
                self.test_actors,
                self.val_actors,
                source.get("split") if isinstance(source, dict) else None,
            )
            return {name: [e for e in kept if e.actor in set(actors[name])] for name in ("train", "val", "test")}
        assignment = official_split([(e.clip_id, e.actor, e.emotion, e.level) for e in everything])
        return {name: [e for e in kept if assignment[e.clip_id] == name] for name in ("train", "val", "test")}

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest, split and build the window datasets."""
        cached_size = mf.read_config(self.cache_dir).get("size")
        if isinstance(cached_size, int) and cached_size != self.size:
            log.info("%s holds %d px crops: size %d -> %d", self.cache_dir, cached_size, self.size, cached_size)
            self.size = cached_size
        everything, _ = self._entries()
        self.splits = self.split_entries()
        fields = self.fields
        self.datasets = {
            "train": MEADWindows(self.splits["train"], self.window, self.stride, fields, everything, True),
            "val": MEADWindows(self.splits["val"], self.window, self.window, fields, everything),
            "test": MEADWindows(self.splits["test"], self.window, self.window, fields, everything),
            "predict": MEADWindows(self.splits["test"], None, 1, fields, everything),
        }
        for name, dataset in self.datasets.items():
            if dataset.skipped:
                log.info("%s: %d clips shorter than the %d-frame window skipped", name, dataset.skipped, self.window)

    # ------------------------------------------------------------------------------------------
    def _loader(self, dataset: MEADWindows, batch_size: int, sampler=None) -> DataLoader:  # noqa: ANN001
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        return self._loader(dataset, self.batch_size, RandomWindowSampler(len(dataset), self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"], self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"], self.batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["predict"], 1)

    # ------------------------------------------------------------------------------------------
    @property
    def num_emotions(self) -> int:
        return len(self.emotions)

    @property
    def available_fields(self) -> tuple[str, ...]:
        return FIELDS

    def state_dict(self) -> dict[str, object]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self.seed = int(state_dict.get("seed", self.seed))

    def describe(self) -> str:
        """One line per split: clips and windows."""
        lines = [f"cache {self.cache_dir} ({self.split} split)"]
        for name in ("train", "val", "test"):
            clips = self.splits.get(name, [])
            windows = len(self.datasets[name]) if name in self.datasets else 0
            actors = sorted({e.actor for e in clips})
            lines.append(f"  {name}: {len(clips)} clips, {windows} windows, actors {', '.join(actors)}")
        return "\n".join(lines)

