"""The notebooks: stored without outputs, and executed end to end with tiny settings."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {index} keeps outputs"


def run_notebook(name: str, settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Execute ``notebooks/<name>`` with ``settings`` in its environment; return every cell output.

    The kernel imports this checkout's emoface, whichever one is installed. No output is an error.
    """
    from nbclient import NotebookClient

    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    NotebookClient(notebook, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # no noise: no live bars (they want ipywidgets and recurse with ipykernel's streams), no
    # terminal colour codes, no "Total FLOPs: 0", no wandb git-root warning
    text = str(outputs).lower()
    for noise in ("ipywidgets", "\x1b[", "\\x1b[", "total flops", "git root"):
        assert noise not in text, noise
    return outputs


def images_in(outputs: list[dict]) -> list[dict]:
    return [o for o in outputs if "image/png" in o.get("data", {})]


def test_quickstart_runs_with_tiny_settings(mini_mead_small: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    settings = {
        "EMOFACE_NB_WORKDIR": str(tmp_path / "work"),
        "EMOFACE_NB_MINI_MEAD": str(mini_mead_small),  # the session's 3-actor, 1 s, 64 px mini-MEAD
        "EMOFACE_NB_SIZE": "64",
        "EMOFACE_NB_EMOTIONS": "neutral,happy",  # 12 clips to preprocess
        "EMOFACE_NB_EPOCHS": "1",
        "EMOFACE_NB_TINY": "1",  # configs/tests/tiny_s2l.yaml: tiny network, 2 batches, 3 predicted clips
    }
    outputs = run_notebook("01_quickstart.ipynb", settings, monkeypatch)

    work = tmp_path / "work"
    assert (work / "runs/s2l/checkpoints/last.ckpt").is_file()
    cue_files = sorted((work / "runs/s2l/predictions").rglob("*.npz"))
    assert len(cue_files) == 3
    plots = sorted(p.name for p in (work / "plots").iterdir())
    assert len(plots) == 2 and plots[0].endswith(".mp4") and plots[1].endswith(".png")
    assert len(images_in(outputs)) >= 3  # the clip grid, the curves, the plotted cues


def test_benchmark_report_runs_with_tiny_settings(mini_mead_small: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The report notebook makes its own run (mini-MEAD, copy and blur method folders, the CLI) and plots it."""
    settings = {
        "EMOFACE_NB_WORKDIR": str(tmp_path / "work"),
        "EMOFACE_NB_MINI_MEAD": str(mini_mead_small),  # the session's 3-actor, 1 s, 64 px mini-MEAD
        "EMOFACE_NB_SIZE": "64",
        "EMOFACE_NB_EMOTIONS": "neutral,happy,sad",  # 21 clips to preprocess
        "EMOFACE_NB_CLIPS_PER_EMOTION": "1",  # 3 test clips benchmarked
        "EMOFACE_NB_TINY": "1",  # configs/tests/tiny_benchmark.yaml: CPU, 64 px crops, random LPIPS backbone
        "TORCH_HOME": str(tmp_path / "empty-torch-home"),  # no weight files: FID, LSE, emotion are n/a rows
    }
    monkeypatch.delenv("EMOFACE_NB_RESULTS", raising=False)
    outputs = run_notebook("02_benchmark_report.ipynb", settings, monkeypatch)

    results = tmp_path / "work/benchmark"
    assert (results / "results.csv").is_file() and (results / "per_clip.csv").is_file()
    text = "".join(o.get("text", "") for o in outputs)
    assert "4 rows, 12 per-clip rows, 3 test clips" in text  # results.csv and per_clip.csv were read
    rendered = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "PSNR (dB) ↑" in rendered and "| blur |" in rendered and "fid: n/a, MissingWeightsError" in rendered
    assert len(images_in(outputs)) >= 3  # the bars per metric, accuracy per emotion, metrics per emotion
