"""Known-harmless noise of upstream libraries, silenced for ``emoface`` runs; real warnings stay.

Each entry names what it hides and why it is harmless. Everything else Lightning, PyTorch or
wandb say still shows.
"""

from __future__ import annotations

import logging
import warnings

#: (message regex, category, why it is harmless) of Python warnings hidden in emoface runs.
HARMLESS_WARNINGS: list[tuple[str, type[Warning], str]] = [
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        "Lightning's own pytree helper uses an API newer PyTorch deprecates; nothing to do for users",
    ),
    (
        r"\s*skip_none parameter was deprecated",
        Warning,
        "jsonargparse deprecates an argument LightningCLI still passes when it saves the config",
    ),
    (
        r"\s*By default only one JsonargparseDeprecationWarning per type is shown",
        Warning,
        "jsonargparse's preamble to the first deprecation warning (any other one still shows)",
    ),
    (
        r"Starting from v1\.9\.0, `tensorboardX` has been removed",
        UserWarning,
        "advice to install TensorBoard when no logger is configured; the CSV logger is used",
    ),
]

#: Prefixes of Lightning info lines that advertise other products, or that ``emoface`` replaces
#: with its own one line (Ctrl-C: "emoface fit: interrupted (Ctrl-C)", exit status 130).
ADVERTISING_PREFIXES: tuple[str, ...] = ("💡 Tip:", "Detected KeyboardInterrupt, attempting graceful shutdown")

_LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch",
    "lightning.fabric",
)


class _DropAdvertising(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith(ADVERTISING_PREFIXES)


_FILTER = _DropAdvertising()


def quiet_known_noise() -> None:
    """Hide :data:`HARMLESS_WARNINGS` and Lightning's advertising tips (idempotent)."""
    for message, category, _why in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def drop_wandb_anonymous(loggers: list[object]) -> None:
    """Stop Lightning's WandbLogger from passing ``anonymous=None`` to ``wandb.init``.

    wandb >= 0.22 warns "The anonymous setting has no effect" whenever the key is present, even
    as ``None`` (the WandbLogger default); leaving it out changes nothing else.
    """
    for logger in loggers:
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            init.pop("anonymous", None)


def make_wandb_folders(loggers: list[object]) -> None:
    """Create each Weights & Biases logger's ``save_dir`` before its run starts.

    wandb looks for the git repository from that folder; on a fresh checkout it does not exist
    yet (``runs/s2l``) and wandb warns "git root runs/s2l does not exist" (and records no commit).
    """
    from pathlib import Path

    for logger in loggers:
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("dir"):
            Path(init["dir"]).mkdir(parents=True, exist_ok=True)
