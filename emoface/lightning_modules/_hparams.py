"""Saving a system's constructor arguments so that ``load_from_checkpoint`` rebuilds it."""

from __future__ import annotations

import inspect
import warnings

import lightning as L
from torch import nn


def save_hyperparameters_except_objects(system: L.LightningModule) -> None:
    """``system.save_hyperparameters()`` for the caller's ``__init__``, minus live modules and callables.

    Under ``emoface fit`` (LightningCLI) nested networks arrive as their config
    (``class_path`` / ``init_args``), which is saved, so ``System.load_from_checkpoint(ckpt)``
    rebuilds them without arguments. Built in Python, a network is a live ``nn.Module`` (and an
    optimizer factory a callable): those are left out, as Lightning recommends, and must be
    passed again to ``load_from_checkpoint``.
    """
    frame = inspect.currentframe().f_back  # the system's __init__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning warns about modules before we drop them
        system.save_hyperparameters(frame=frame)
    objects = [key for key, value in system.hparams.items() if isinstance(value, nn.Module) or callable(value)]
    if objects:
        system.save_hyperparameters(ignore=objects, frame=frame)
