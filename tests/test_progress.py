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
    assert lines[1].startswith("work: 1/3 clips (33%), ")
    assert lines[2].startswith("work: 2/3 clips (67%), ") and "ETA" in lines[2]  # measured from the first clip
    assert lines[-1].startswith("work: 3/3 clips (100%)") and lines[-1].endswith("(finished)")


def test_first_eta_excludes_the_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that take 100 s to start, then a clip a second: the ETA is about the clips left, not
    hours (the first estimate of a 600-clip build said 3:16:15)."""
    import emoface.progress

    clock = iter([0.0, 100.0, 101.0, 102.0, 102.0])  # enter; clips 1..3 (after a 100 s start-up); status
    monkeypatch.setattr(emoface.progress.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    report = ProgressReport("mini-MEAD", total=100, unit="clips", stream=stream, every_seconds=3600)
    with report:
        report.advance()  # t = 100: the first clip, after the start-up
        report.advance()
        report.advance()
        status = report.status()
        assert "ETA 0:01:37" in status, status  # 97 clips left at 1 clip/s
        monkeypatch.setattr(emoface.progress.time, "perf_counter", lambda: 102.0)


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
    # from the second batch on, the time left in the epoch and in the run
    second = next(line for line in err.splitlines() if line.startswith("[fit] epoch 1/2, batch 2/3"))
    assert "ETA epoch 0:00:0" in second and "ETA total 0:00:" in second, second
    assert f"emoface fit: checkpoints in {tmp_path / 'lightning_logs/version_0/checkpoints'}" in err
    main(["predict", *boring, "--trainer.limit_predict_batches=2", f"--trainer.default_root_dir={tmp_path}"])
    assert "[predict] batch 2/2, " in capsys.readouterr().err


KERNEL_CELL = '''
import os, sys
import emoface
from lightning.pytorch.demos.boring_classes import BoringModel

from emoface.cli import main
from emoface.progress import ProgressReport, is_terminal

class Printing(BoringModel):
    """Prints under the progress display, as benchmark_report.py does."""

    def test_step(self, batch, batch_idx):
        print("test step", batch_idx)
        output = super().test_step(batch, batch_idx)
        self.log("test/loss", output["y"])
        return output

import __main__
__main__.Printing = Printing
print("emoface from", os.path.dirname(emoface.__file__), "terminal:", is_terminal())
with ProgressReport("work", total=50, unit="items", every_seconds=0) as report:
    for index in range(50):
        print("item", index)
        report.advance()
main(["test", "--model", "__main__.Printing", "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule",
      "--trainer.limit_test_batches=20", "--trainer.default_root_dir", ROOT])
'''


def test_progress_in_a_jupyter_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebooks' progress path under a real ipykernel: plain lines, no live display (rich's live
    bar and ipykernel's stream flushing recursed in 02_benchmark_report; it also wants ipywidgets)."""
    import os

    import nbformat
    from nbclient import NotebookClient

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("EMOFACE_PROGRESS_SECONDS", "0")
    cell = nbformat.v4.new_code_cell(f"ROOT = {str(tmp_path)!r}\n{KERNEL_CELL}")
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = notebook.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    streams = {name: "".join(o.text for o in outputs if o.output_type == "stream" and o.name == name)
               for name in ("stdout", "stderr")}  # fmt: skip
    assert f"emoface from {repo / 'emoface'} terminal: False" in streams["stdout"]
    assert "item 49" in streams["stdout"] and "test step 19" in streams["stdout"]
    assert "work: 2/50 items (4%)" in streams["stderr"] and "work: 50/50 items (100%)" in streams["stderr"]
    assert "[test] batch 20/20" in streams["stderr"] and "[test] " in streams["stderr"]
    written = next(line for line in streams["stderr"].splitlines() if line.startswith("emoface test: metrics in "))
    assert Path(written.removeprefix("emoface test: metrics in ")).is_file(), written
    # no live display (redrawn in place; the prints under it captured into it), only Lightning's
    # static results table
    assert not [o for o in outputs if o.output_type == "update_display_data"]
    displays = [str(o.get("data", {}).get("text/plain", "")) for o in outputs if o.output_type == "display_data"]
    assert not [text for text in displays if "item " in text or "test step" in text or "Testing" in text], displays
    assert "ipywidgets" not in str(outputs)
