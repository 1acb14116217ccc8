"""Data modules: the MEADDataModule shared by both stages, its datasets and splits, mini-MEAD."""

from emoface.datamodules.mead import MEADDataModule
from emoface.datamodules.method_videos import BenchmarkDataModule

__all__ = ["BenchmarkDataModule", "MEADDataModule"]
