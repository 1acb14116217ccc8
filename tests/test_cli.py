"""The ``emoface`` executable: verbs, help, LightningCLI plumbing and config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emoface.cli import main

BORING = [
    "--model", "lightning.pytorch.demos.boring_classes.BoringModel",
    "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule",
]  # fmt: skip


def test_console_script_lists_every_verb() -> None:
    result = subprocess.run(["emoface", "--help"], capture_output=True, text=True, check=True)
    for verb in ("fit", "validate", "test", "predict", "mini-mead"):
        assert f"  {verb}" in result.stdout


def test_unknown_verb_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fly"]) == 2
    assert "unknown verb 'fly'" in capsys.readouterr().err


def test_tool_verb_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["mini-mead", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--speakers" in out and "--seed" in out


def test_print_config_merges_configs_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("trainer:\n  max_epochs: 3\n  max_steps: 7\n")
    second = tmp_path / "b.yaml"
    # omegaconf parser mode: the second file interpolates a value of the merged config.
    second.write_text("trainer:\n  max_epochs: 5\n  min_epochs: ${trainer.max_epochs}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *BORING, "--config", str(first), "--config", str(second), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "max_epochs: 5" in printed and "max_steps: 7" in printed and "min_epochs: 5" in printed


def test_fit_saves_resolved_config_beside_logs(tmp_path: Path) -> None:
    main(["fit", *BORING, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
          "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    saved = list(tmp_path.glob("lightning_logs/version_*/config.yaml"))
    assert saved and "BoringModel" in saved[0].read_text()


@pytest.mark.parametrize("bad", ["--trainer.no_such_key=1", "--trainer.max_epochs=abc"])
def test_wrong_config_key_or_value_exits_2(bad: str) -> None:
    result = subprocess.run([sys.executable, "-m", "emoface.cli", "fit", *BORING, bad], capture_output=True, text=True)
    assert result.returncode == 2
    assert "error" in result.stderr.lower()


def test_no_advertising_or_known_harmless_warnings_but_real_ones_show(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["fit", *BORING, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
              "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
        from lightning.pytorch.utilities._pytree import _tree_flatten

        _tree_flatten(1)  # Lightning's helper that builds a deprecated torch LeafSpec
    messages = [str(w.message) for w in caught]
    noise = ("LeafSpec", "tensorboardX", "skip_none", "JsonargparseDeprecationWarning")
    assert not any(word in m for m in messages for word in noise), messages
    assert "Tip" not in caplog.text and "litlogger" not in caplog.text
    assert "GPU available" in caplog.text  # Lightning's other info lines stay
    assert any("smaller than the logging interval" in m for m in messages), messages  # a real warning stays
