"""Data modules: the MEADDataModule shared by both stages, its datasets and splits, mini-MEAD."""

from emoface.datamodules.mead import MEADDataModule

__all__ = ["MEADDataModule"]
