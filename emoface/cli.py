"""The one ``emoface`` executable.

``emoface fit|validate|test|predict`` are LightningCLI (subclass mode for model and data,
omegaconf+ parser mode: interpolations resolve after all ``--config`` files, merged left to right,
and the command line; ``--print_config``; explicit arguments win over ``--ckpt_path``
hyperparameters; progress lines without a terminal; known-harmless noise hidden). The other
verbs (``mini-mead``, ``preprocess``, ``generate`` ...) are plain argparse commands that live in
the module named by :data:`TOOL_VERBS`; each such module defines ``HELP: str``,
``add_arguments(parser)`` and ``run(args) -> int``, and imports torch only inside ``run``, after
its arguments are checked: ``emoface --help``, ``emoface TOOL --help`` and a bad argument or a
missing file are answered before torch or Lightning is imported.

Command lines are strict: no option is ever taken for a longer one it abbreviates
(``--trainer.max_epoch`` is an error naming the key, not ``max_epochs``). Ctrl-C is one line and
exit status 130; SIGTERM during ``fit`` (what SLURM sends before the time limit) saves a resumable
checkpoint (``--ckpt_path last`` finds it) and exits with status 143.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""

TERMINATED = 143
"""Exit status of ``fit`` stopped by SIGTERM (128 + SIGTERM), after saving a resumable checkpoint."""


def _available_tools() -> dict[str, object]:
    """Import each tool verb's module (light: their heavy imports are inside ``run``); verbs whose
    module is not part of this install are hidden."""
    tools: dict[str, object] = {}
    for verb, module_name in TOOL_VERBS.items():
        try:
            tools[verb] = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # a real missing dependency must surface
                raise
    return tools


def _missing_input_files(argv: Sequence[str]) -> list[str]:
    """Config files (``--config``/``-c``) and checkpoint files (``--ckpt_path``) that ``argv`` names
    but that do not exist, found without importing Lightning.

    Only values that are plainly local files count: ``--ckpt_path last``/``best``/``hpc``, URLs
    and inline YAML given to ``--config`` are left to the parser.
    """
    missing: list[str] = []
    for index, token in enumerate(argv):
        option, equals, inline = token.partition("=")
        if option not in ("--config", "-c", "--ckpt_path"):
            continue
        value = inline if equals else (argv[index + 1] if index + 1 < len(argv) else "")
        if "://" in value or "\n" in value or value.lstrip().startswith(("{", "[")):
            continue
        suffixes = (".ckpt", ".pt", ".pth") if option == "--ckpt_path" else (".yaml", ".yml", ".json")
        kind = "checkpoint" if option == "--ckpt_path" else "config file"
        if value.endswith(suffixes) and not os.path.isfile(value):
            missing.append(f"{value}: {kind} not found ({option})")
    return missing


def _top_level_help(tools: dict[str, object]) -> str:
    lines = ["usage: emoface VERB [options]", "", "Emotion-aligned talking faces (PyTorch Lightning).", "", "verbs:"]
    for verb, text in TRAINER_VERBS.items():
        lines.append(f"  {verb:<12}{text}")
    for verb, module in tools.items():
        lines.append(f"  {verb:<12}{getattr(module, 'HELP', '')}")
    lines += ["", "`emoface VERB --help` describes a verb; e.g. `emoface fit --config configs/s2l.yaml`."]
    return "\n".join(lines)


def _is_print_config(token: str) -> bool:
    return token == "--print_config" or token.startswith("--print_config=")


def _without_print_config(argv: list[str]) -> list[str]:
    """``argv`` less ``--print_config`` (and its ``skip_null``-style value when given apart)."""
    kept: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value and not token.startswith("-") and set(token.split(",")) <= {"skip_null", "skip_default", ""}:
            skip_value = False
            continue
        skip_value = token == "--print_config"
        if not _is_print_config(token):
            kept.append(token)
    return kept


def _ckpt_path_of(argv: list[str]) -> str | None:
    """The ``ckpt_path`` that ``argv`` sets last: ``--ckpt_path V``, ``--ckpt_path=V``, or a key
    of a ``--config`` file (read here, before parsing, so its hyperparameters can be defaults)."""
    import yaml

    value = None
    for index, token in enumerate(argv):
        option, _, inline = token.partition("=")
        given = inline if _ else (argv[index + 1] if index + 1 < len(argv) else None)
        if option == "--ckpt_path":
            value = given
        elif option in ("--config", "-c") and given:
            try:
                loaded = yaml.safe_load(Path(given).read_text()) if os.path.isfile(given) else None
            except (OSError, yaml.YAMLError):
                loaded = None  # the parser reports it
            if isinstance(loaded, dict) and loaded.get("ckpt_path"):
                value = str(loaded["ckpt_path"])
    return value


def checkpoint_model_config(ckpt_path: str | None, class_path: str | None = None) -> dict | None:
    """The ``model`` config (``class_path``/``init_args``) a LightningCLI checkpoint was trained with.

    Args:
        ckpt_path: a ``.ckpt`` file (other values, e.g. ``last``, give ``None``).
        class_path: the class to assume when the checkpoint does not name one.

    Returns:
        ``{"class_path": ..., "init_args": {...}}``, or ``None`` without a file or hyperparameters.
    """
    import torch

    if not ckpt_path or not Path(ckpt_path).is_file():
        return None
    hparams = dict(torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    class_path = hparams.pop("_class_path", class_path)
    if not hparams or class_path is None:
        return None
    return {"class_path": class_path, "init_args": hparams}


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: list(value) if isinstance(value, tuple) else value}


def _lightning_cli_class() -> type:
    """:class:`EmofaceCLI`, defined on first use (Lightning is imported only by the trainer verbs)."""
    from jsonargparse import Namespace
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.utilities import rank_zero_info

    from emoface.callbacks import Interruption

    interruption = Interruption()

    class EmofaceCLI(LightningCLI):
        """LightningCLI where explicit arguments win over a checkpoint's hyperparameters.

        Upstream LightningCLI parses ``--ckpt_path``'s hyperparameters *over* the config files and
        command line (Lightning issues 20801 / 20310). Here they become the model's defaults before
        parsing, so config files and command line override them and ``--print_config`` prints the
        config that runs.
        """

        def parse_arguments(self, parser: Any, args: Any) -> None:
            if isinstance(args, (dict, Namespace)):
                super().parse_arguments(parser, args)
                return
            argv = list(sys.argv[1:] if args is None else args)
            subcommand = argv[0] if argv and argv[0] in TRAINER_VERBS else None
            # the checkpoint's hyperparameters become the model's defaults, then one parse
            model = checkpoint_model_config(_ckpt_path_of(argv)) if subcommand else None
            if model is None:
                # a checkpoint that does not name its class (or a ckpt_path written unusually):
                # parse once (without printing) to read them, then again over the new defaults
                first_pass = _without_print_config(argv)
                config = parser.parse_args(first_pass)
                subcommand = config.get("subcommand")
                if subcommand:
                    chosen = config[subcommand]
                    class_path = chosen.get("model.class_path") if chosen.get("model") is not None else None
                    model = checkpoint_model_config(chosen.get("ckpt_path"), class_path)
                if model is None and first_pass == argv:
                    self.config = config
                    return
            if model is not None:
                subparser = parser._subcommands_action._name_parser_map[subcommand]
                subparser.set_defaults(model=model)
            try:
                self.config = parser.parse_args(argv)
            except SystemExit as exit_:
                if model is not None and exit_.code:
                    sys.stderr.write("(the model's defaults were the hyperparameters saved in --ckpt_path)\n")
                raise
            if model is not None:
                self._report_overrides(model, self.config[subcommand].get("model"))

        @staticmethod
        def _report_overrides(model: dict, chosen: Any) -> None:
            final = _flatten(chosen.as_dict() if isinstance(chosen, Namespace) else dict(chosen or {}))
            saved = _flatten(model)
            changed = [
                f"model.{key}: {saved[key]!r} -> {final.get(key)!r}" for key in saved if final.get(key) != saved[key]
            ]
            if changed:
                rank_zero_info(
                    "emoface: the config files / command line override these hyperparameters of the checkpoint:\n  "
                    + "\n  ".join(changed)
                )

        def _parse_ckpt_path(self) -> None:
            """Checkpoint hyperparameters were applied as defaults in :meth:`parse_arguments`."""

        def init_parser(self, **kwargs: Any) -> Any:
            """The parser, without argparse's prefix matching (a misspelt key is an error naming it);
            the subcommands' parsers inherit the setting."""
            kwargs.setdefault("allow_abbrev", False)
            return super().init_parser(**kwargs)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            """The configured trainer, plus :class:`~emoface.callbacks.ProgressLines` unless listed,
            :class:`~emoface.callbacks.CheckpointOnSigterm`, and the record of a Ctrl-C."""
            from emoface.callbacks import CheckpointOnSigterm, ProgressLines
            from emoface.progress import is_terminal

            trainer = super().instantiate_trainer(**kwargs)
            if not any(isinstance(callback, ProgressLines) for callback in trainer.callbacks):
                trainer.callbacks.append(ProgressLines())
            if not any(isinstance(callback, CheckpointOnSigterm) for callback in trainer.callbacks):
                trainer.callbacks.append(CheckpointOnSigterm())
            trainer.callbacks.append(interruption)
            _use_plain_model_summary(trainer)
            if not is_terminal() and trainer.progress_bar_callback is not None:
                # no terminal (SLURM, nohup, CI, a notebook): a live bar would only fill the log
                # with redraws; ProgressLines prints plain lines instead
                trainer.progress_bar_callback.disable()
            return trainer

        def after_fit(self) -> None:
            self._report_outputs("fit")

        def after_validate(self) -> None:
            self._report_outputs("validate")

        def after_test(self) -> None:
            self._report_outputs("test")

        def after_predict(self) -> None:
            self._report_outputs("predict")

        def _report_outputs(self, verb: str) -> None:
            """One line per place the verb wrote to (rank zero, stderr)."""
            if self.trainer.is_global_zero:
                for line in written_outputs(self.trainer, self.model, verb):
                    print(f"emoface {verb}: {line}", file=sys.stderr, flush=True)

        def after_instantiate_classes(self) -> None:
            from emoface.quiet import drop_wandb_anonymous, make_wandb_folders

            drop_wandb_anonymous(list(self.trainer.loggers))
            make_wandb_folders(list(self.trainer.loggers))

    EmofaceCLI.interruption = interruption  # type: ignore[attr-defined]
    return EmofaceCLI


def _use_plain_model_summary(trainer: Any) -> None:
    """Replace Lightning's default model summary (plain or rich) by :class:`~emoface.callbacks.PlainModelSummary`."""
    from lightning.pytorch.callbacks import ModelSummary, RichModelSummary

    from emoface.callbacks import PlainModelSummary

    for index, callback in enumerate(trainer.callbacks):
        if type(callback) in (ModelSummary, RichModelSummary):
            trainer.callbacks[index] = PlainModelSummary(max_depth=callback._max_depth)


def written_outputs(trainer: Any, model: Any, verb: str) -> list[str]:
    """Where ``trainer.<verb>`` wrote what: checkpoints (fit), predictions (a model with
    ``prediction_dir()``), benchmark tables (a model with ``out_dir``), and each logger's files."""
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    lines: list[str] = []
    if verb == "fit":
        folders = {
            str(callback.dirpath) for callback in trainer.checkpoint_callbacks if getattr(callback, "dirpath", None)
        }
        lines += [f"checkpoints in {folder}" for folder in sorted(folders)]
    if verb == "predict" and callable(getattr(model, "prediction_dir", None)):
        lines.append(f"predictions in {model.prediction_dir()}")
    if verb == "test" and hasattr(model, "out_dir"):
        out = model.out_dir or Path(trainer.default_root_dir) / "benchmark"
        lines.append(f"benchmark tables (results.csv, results.md, per_clip.csv, report.md) in {out}")
    if verb == "predict":
        return lines  # predict logs no metrics
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            metrics = Path(logger.log_dir) / "metrics.csv"
            if metrics.is_file():  # a model that logs nothing writes none
                lines.append(f"metrics in {metrics}")
        elif isinstance(logger, WandbLogger):
            run = logger.experiment
            lines.append(f"metrics in the wandb run {getattr(run, 'url', None) or getattr(run, 'dir', '')}".rstrip())
        elif getattr(logger, "log_dir", None):
            lines.append(f"logs in {logger.log_dir}")
    return lines


def run_lightning_cli(args: Sequence[str] | None) -> int:
    """Run LightningCLI on ``args`` (first item: the subcommand); ``None`` reads ``sys.argv``.

    Returns:
        0, :data:`INTERRUPTED` after Ctrl-C, :data:`TERMINATED` after SIGTERM (a checkpoint saved).
    """
    from jsonargparse import set_parsing_settings
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import emoface.datamodules.mead  # noqa: F401  (registers the classes for class_path shorthands)
    import emoface.datamodules.method_videos  # noqa: F401
    import emoface.lightning_modules  # noqa: F401
    from emoface.callbacks import CheckpointOnSigterm, SaveConfigToLoggers
    from emoface.quiet import quiet_known_noise

    quiet_known_noise()
    set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    verb = (sys.argv[1:] if args is None else list(args) or [""])[0]
    cli_class = _lightning_cli_class()
    wandb_run_before = _wandb_run()
    exit_code = 1
    try:
        _run_cli(cli_class, LightningModule, LightningDataModule, SaveConfigToLoggers, args)
        exit_code = 0
    except SIGTERMException:
        exit_code = TERMINATED
        saved = CheckpointOnSigterm.last_saved
        where = f"resumable checkpoint {saved} (resume: --ckpt_path last)" if saved else "no checkpoint saved"
        print(f"emoface {verb}: stopped by SIGTERM; {where}", file=sys.stderr, flush=True)
    except SystemExit as exit_:
        if not cli_class.interruption.interrupted:  # type: ignore[attr-defined]
            raise
        exit_code = INTERRUPTED
        print(f"emoface {verb}: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        del exit_
    finally:
        # finish a Weights & Biases run this call started: its files are complete (offline: in its
        # folder, ready for `wandb sync`) when `main` returns, not only at interpreter exit
        run = _wandb_run()
        if run is not None and run is not wandb_run_before:
            run.finish(exit_code=exit_code)
            if wandb_run_before is None:
                # `finish` returns before wandb's service process has flushed the run's log: a
                # reader right after it found 12288 of 13861 bytes (wandb 0.31). Tearing the
                # service down waits for it; the next `wandb.init` in this process starts a new one.
                sys.modules["wandb"].teardown()
    return exit_code


def _wandb_run() -> Any:
    """The active Weights & Biases run, if wandb is imported and a run is active."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


def _run_cli(
    cli_class: type, model_class: type, data_class: type, save_config: type, args: Sequence[str] | None
) -> None:
    cli_class(
        model_class,
        data_class,
        save_config_callback=save_config,
        subclass_mode_model=True,
        subclass_mode_data=True,
        # omegaconf+: interpolations resolve after every config file and the command line are
        # merged, so `--trainer.default_root_dir DIR` moves every path spelled from it. A config's
        # `${trainer.x}` is read relative to the subcommand (the parser's root is `fit.`, `test.` ...).
        # allow_abbrev=False (also set in init_parser): `--trainer.max_epoch` is not `max_epochs`.
        parser_kwargs={"parser_mode": "omegaconf+", "allow_abbrev": False, "prog": "emoface"},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        seed_everything_default=0,
        args=None if args is None else list(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emoface`` console script: the exit status (2: bad arguments, 130: Ctrl-C)."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = argv[0] if argv else ""
    try:
        if verb in TRAINER_VERBS:
            missing = _missing_input_files(argv[1:])
            if missing:  # answered before Lightning is imported
                for problem in missing:
                    print(f"emoface {verb}: error: {problem}", file=sys.stderr)
                return 2
            return _run_trainer_verb(verb, None if from_command_line else argv)
        return _run_tool(argv)
    except KeyboardInterrupt:
        print(f"emoface{' ' + verb if verb else ''}: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return INTERRUPTED


def _run_trainer_verb(verb: str, argv: list[str] | None) -> int:
    """``fit|validate|test|predict`` through LightningCLI; a configuration found unusable before any
    work (e.g. ``BenchmarkConfigError``, which jsonargparse re-raises as the cause of its own
    ``ValueError``) is one line and status 2."""
    try:
        return run_lightning_cli(argv)
    except ValueError as error:
        cause: BaseException | None = error
        while cause is not None and getattr(cause, "exit_code", None) != 2:
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        print(f"emoface {verb}: error: {cause}", file=sys.stderr)
        return 2


def _run_tool(argv: list[str]) -> int:
    """Help, version, or a tool verb (``mini-mead``, ``preprocess``, ``generate``, ``plot``)."""
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
    parser = argparse.ArgumentParser(
        prog=f"emoface {verb}", description=getattr(module, "HELP", None), allow_abbrev=False
    )
    module.add_arguments(parser)  # type: ignore[attr-defined]
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
