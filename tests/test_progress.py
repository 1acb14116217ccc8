"""Progress is always visible: a bar on a terminal, periodic plain lines otherwise (SLURM, CI)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from emoface.cli import main
from emoface.progress import ProgressReport


def test_plain_lines_without_a_terminal() -> None:
    stream = io.StringIO()  # not a terminal
    with ProgressReport("work", total=3, unit="clips", stream=stream, every_seconds=0) as report:
        for _ in range(3):
            report.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "work: 0/3 clips to do"
    assert lines[1].startswith("work: 1/3 clips (33%), ") and "ETA" in lines[1]
    assert lines[-1].startswith("work: 3/3 clips (100%)") and lines[-1].endswith("(finished)")


def test_lines_are_periodic_and_progress_can_be_off() -> None:
    stream = io.StringIO()
    with ProgressReport("work", total=100, stream=stream, every_seconds=3600) as report:
        report.advance(100)
    assert len(stream.getvalue().splitlines()) == 2  # the first and the last line only
    quiet = io.StringIO()
    with ProgressReport("work", total=3, stream=quiet, enabled=False) as report:
        report.advance()
    assert quiet.getvalue() == ""


def test_rich_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with ProgressReport("work", total=2, unit="clips", stream=stream) as report:
        report.advance(2)
    assert "━" in stream.getvalue() and "2/2" in stream.getvalue() and "work: " not in stream.getvalue()


def test_data_build_and_preprocessing_report_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emoface.datamodules.mini_mead import make_mini_mead
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess

    raw = make_mini_mead(tmp_path / "raw", speakers=1, clips=1, seconds=0.2, size=32, workers=1, progress=True)
    preprocess(raw, tmp_path / "cache", PreprocessOptions(backend="groundtruth", size=32), progress=True)
    err = capsys.readouterr().err
    assert "mini-MEAD: 0/22 clips to do" in err and "mini-MEAD: 22/22 clips (100%)" in err
    assert "preprocess: 0/22 clips to do" in err and "preprocess: 22/22 clips (100%)" in err


def test_training_prints_progress_lines_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EMOFACE_PROGRESS_SECONDS", "0")
    boring = ["--model", "lightning.pytorch.demos.boring_classes.BoringModel",
              "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule"]  # fmt: skip
    main(["fit", *boring, "--trainer.max_epochs=2", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1",
          "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    err = capsys.readouterr().err
    assert "[fit] epoch 1/2, batch 1/3, step 1, " in err
    assert "[fit] epoch 2/2, batch 3/3, step 6, " in err
    assert "[fit] epoch 2/2, step 6, " in err and "(finished)" in err
    main(["predict", *boring, "--trainer.limit_predict_batches=2", f"--trainer.default_root_dir={tmp_path}"])
    assert "[predict] batch 2/2, " in capsys.readouterr().err
