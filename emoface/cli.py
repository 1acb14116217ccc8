"""The one ``emoface`` executable.

``emoface fit|validate|test|predict`` are LightningCLI (subclass mode for model and data,
omegaconf parser mode, several ``--config`` merged left to right, ``--print_config``). The other
verbs (``mini-mead``, ``preprocess``, ``generate`` ...) are plain argparse commands that live in
the module named by :data:`TOOL_VERBS`; each such module defines ``HELP: str``,
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

TRAINER_VERBS: dict[str, str] = {
    "fit": "Train a model (LightningCLI).",
    "validate": "Run one validation epoch (LightningCLI).",
    "test": "Run the test loop, e.g. the MEAD benchmark (LightningCLI).",
    "predict": "Run prediction and write each stage's outputs (LightningCLI).",
}

TOOL_VERBS: dict[str, str] = {
    "mini-mead": "emoface.datamodules.mini_mead_cli",
    "preprocess": "emoface.preprocessing.cli",
    "generate": "emoface.generate",
    "plot": "emoface.plot",
}


def _available_tools() -> dict[str, object]:
    """Import each tool verb's module; verbs whose module is not part of this install are hidden."""
    tools: dict[str, object] = {}
    for verb, module_name in TOOL_VERBS.items():
        try:
            tools[verb] = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # a real missing dependency must surface
                raise
    return tools


def _top_level_help(tools: dict[str, object]) -> str:
    lines = ["usage: emoface VERB [options]", "", "Emotion-aligned talking faces (PyTorch Lightning).", "", "verbs:"]
    for verb, text in TRAINER_VERBS.items():
        lines.append(f"  {verb:<12}{text}")
    for verb, module in tools.items():
        lines.append(f"  {verb:<12}{getattr(module, 'HELP', '')}")
    lines += ["", "`emoface VERB --help` describes a verb; e.g. `emoface fit --config configs/s2l.yaml`."]
    return "\n".join(lines)


def run_lightning_cli(args: Sequence[str] | None) -> None:
    """Run LightningCLI on ``args`` (first item: the subcommand); ``None`` reads ``sys.argv``."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    import emoface.datamodules  # noqa: F401  (registers the classes for class_path shorthands)
    import emoface.lightning_modules  # noqa: F401

    LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf"},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        seed_everything_default=0,
        args=None if args is None else list(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emoface`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINER_VERBS:
        run_lightning_cli(None if from_command_line else argv)
        return 0
    tools = _available_tools()
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help(tools))
        return 0
    if argv[0] in ("-V", "--version"):
        from emoface import __version__

        print(f"emoface {__version__}")
        return 0
    verb = argv[0]
    if verb not in tools:
        print(_top_level_help(tools), file=sys.stderr)
        print(f"\nemoface: error: unknown verb {verb!r}", file=sys.stderr)
        return 2
    module = tools[verb]
    parser = argparse.ArgumentParser(prog=f"emoface {verb}", description=getattr(module, "HELP", None))
    module.add_arguments(parser)  # type: ignore[attr-defined]
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
