"""Files of a benchmark run: results.csv, results.md, per_clip.csv, report.md, protocol.json."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from emoface.emotions import EMOTIONS


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(benchmark: Any) -> str:
    """Methods x metrics with arrows for the better direction, the clip count of each row, n/a reasons."""
    from emoface.lightning_modules.benchmark import METRIC_GROUPS, column_titles

    groups = {key: group for group, keys in METRIC_GROUPS.items() for key in keys} | {"fid": "fid"}
    cols = [(k, t) for k, t in column_titles() if groups[k] in benchmark.metric_names]
    lines = ["| method | clips | " + " | ".join(t for _, t in cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for entry in benchmark.results:
        cells = [entry["method"], str(entry["clips"])]
        for key, _ in cols:
            value = entry[key]
            cell = _fmt(value)
            n = entry.get(f"{key}_n")
            if n is not None and 0 < n < entry["clips"]:
                cell += f" ({n})"  # fewer clips than the row: say so
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {group}: n/a, {reason}" for group, reason in benchmark.unavailable.items()]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def problem_report(benchmark: Any, rows: list[dict[str, Any]]) -> str:
    """Missing, extra, unreadable, too-short and wrong-rate videos of each method, by name."""
    dm = benchmark.trainer.datamodule
    lines = ["# Benchmark report", "", f"{len(dm.test_entries)} test clips.", ""]
    for spec in dm.methods:
        pairing = dm.pairings[spec.name]
        mine = [r for r in rows if r["method"] == spec.name]
        lines.append(f"## {spec.name} ({spec.folder}, pattern `{spec.pattern}`)")
        if pairing.error:
            lines.append(f"- folder unusable: {pairing.error}")
        groups = {
            "missing": pairing.missing,
            "unreadable": [f"{r['clip']} ({r['path']}: {r['status'].split(': ', 1)[-1]})"
                           for r in mine if r["status"].startswith("unreadable")],
            "too short": [f"{r['clip']} ({r['status'].split(': ', 1)[-1]})"
                          for r in mine if r["status"].startswith("too_short")],
            "wrong rate (resampled)": [f"{r['clip']} ({r['note']})" for r in mine if r.get("status_rate")],
            "extra (not test clips)": pairing.extra,
            "not matching the pattern": pairing.unparsed,
            "duplicates (ignored)": pairing.duplicates,
        }  # fmt: skip
        scored = sum(r["status"] == "ok" for r in mine)
        lines.append(f"- scored: {scored} of {len(dm.test_entries)} clips")
        for title, names in groups.items():
            if names:
                lines.append(f"- {title}: {len(names)}: " + ", ".join(names))
        lines.append("")
    return "\n".join(lines)


def write_outputs(out: Path, benchmark: Any, rows: list[dict[str, Any]]) -> None:
    """Write every output file of a run into ``out`` and print the table."""
    from emoface.lightning_modules.benchmark import SCALARS

    out.mkdir(parents=True, exist_ok=True)
    results = benchmark.results
    fields = ["method", "clips", "missing", "unreadable", "too_short", "wrong_rate", "fid"]
    for key, _, _ in SCALARS:
        fields += [key, f"{key}_n"]
    fields += [f"acc_{e}" for e in EMOTIONS]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    clip_fields = ["method", "clip", "status", "frames", "emotion", "emotion_pred", *(k for k, _, _ in SCALARS),
                   "path", "note"]  # fmt: skip
    with open(out / "per_clip.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=clip_fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = markdown_table(benchmark)
    per_emotion = ["| method | " + " | ".join(EMOTIONS) + " |", "|---" * (len(EMOTIONS) + 1) + "|"]
    per_emotion += ["| " + " | ".join([r["method"], *(_fmt(r[f"acc_{e}"], 2) for e in EMOTIONS)]) + " |"
                    for r in results]  # fmt: skip
    text = f"# MEAD benchmark\n\n{table}\n"
    if "emotion" in benchmark.metric_names and "emotion" not in benchmark.unavailable:
        text += "\n## Emotion accuracy per emotion\n\n" + "\n".join(per_emotion) + "\n"
    (out / "results.md").write_text(text)
    (out / "report.md").write_text(problem_report(benchmark, rows))
    (out / "protocol.json").write_text(json.dumps(benchmark.protocol(), indent=2, default=str))
    logger = benchmark.logger
    if logger is not None and type(logger).__name__ == "WandbLogger":
        logger.log_table(key="benchmark/results", columns=fields,
                         data=[[r.get(f) for f in fields] for r in results])  # fmt: skip
    print(f"\n{table}\n\n(written to {out}: results.csv, results.md, per_clip.csv, report.md, protocol.json)")
