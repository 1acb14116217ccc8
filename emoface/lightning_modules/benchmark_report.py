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
    """Methods x metrics with units and arrows for the better direction; per row the clips scored out of
    those expected (a warning mark when fewer than the ground truth's), the missing, unreadable,
    too-short and faceless counts and the face-detection coverage; notes on units, the crop and n/a reasons."""
    from emoface.lightning_modules.benchmark import FID_NETWORK_NAMES, METRIC_GROUPS, column_titles

    groups = {key: group for group, keys in METRIC_GROUPS.items() for key in keys} | {"fid": "fid"}
    cols = [(k, t) for k, t in column_titles() if groups[k] in benchmark.metric_names]
    own = benchmark.crop == "own"
    head = ["method", "clips", "missing", "unreadable", "too short", "no face", *(["face frames"] if own else [])]
    lines = ["| " + " | ".join(head + [t for _, t in cols]) + " |", "|---" * (len(cols) + len(head)) + "|"]
    reference = next((e["clips"] for e in benchmark.results if e["method"] == "ground_truth"), None)
    reference = max((e["clips"] for e in benchmark.results), default=0) if reference is None else reference
    short = False
    for entry in benchmark.results:
        clips = f"{entry['clips']}/{entry['expected']}"
        if entry["clips"] < reference:
            clips += " ⚠"
            short = True
        cells = [entry["method"], clips, *(str(entry[k]) for k in ("missing", "unreadable", "too_short", "no_face"))]
        if own:
            cov = entry["face_coverage"]
            cells.append("—" if math.isnan(cov) else f"{100 * cov:.1f}%")
        for key, _ in cols:
            value = entry[key]
            cell = _fmt(value)
            n = entry.get(f"{key}_n")
            if n is not None and 0 < n < entry["clips"]:
                cell += f" ({n})"  # fewer clips than the row: say so
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if short:
        notes.append(f"- ⚠ scored on fewer clips than the ground truth row ({reference}): its means cover a "
                     "different set of clips, so compare it with care (report.md names the clips).")  # fmt: skip
    notes.append(f"- clips: scored / expected; a metric scored on fewer clips than its row shows that count in "
                 "brackets. Units: PSNR in dB; SSIM, LPIPS, Emo-Acc in [0, 1]; LSE-C/D in SyncNet distance units; "
                 f"AV offset in frames (25 fps); M-LMD and F-LMD in pixels of the {benchmark.image_size} px crop; "
                 "pose and gaze error in degrees.")  # fmt: skip
    if own:
        notes.append("- crop: every video, ground truth included, aligned by its own face (landmarks detected on its "
                     "own frames); face frames = frames where the face was found / frames searched. Frames without "
                     f"a face are {'interpolated' if benchmark.no_face == 'interpolate' else 'dropped'}; a video with "
                     f"a face in fewer than {benchmark.min_face_coverage:g} of its frames is counted as no face.")  # fmt: skip
    else:
        notes.append(f"- crop: {benchmark.crop} (see protocol.json).")
    if "fid" in benchmark.metric_names:
        notes.append(f"- FID network: {FID_NETWORK_NAMES[benchmark.fid_network]}.")
    notes += [f"- {group}: n/a, {reason}" for group, reason in benchmark.unavailable.items()]
    return "\n".join(lines + ["", *notes])


def problem_report(benchmark: Any, rows: list[dict[str, Any]]) -> str:
    """Missing, extra, unreadable, too-short and wrong-rate videos of each method, by name."""
    dm = benchmark.trainer.datamodule
    lines = ["# Benchmark report", "", f"Protocol {benchmark.protocol_name}: {len(dm.test_entries)} test clips.", ""]
    gt_faceless = [f"{r['clip']} ({r['status'].split(': ', 1)[-1]})" for r in rows
                   if r["method"] == "ground_truth" and r["status"].startswith("no_face")]  # fmt: skip
    if gt_faceless:
        lines += [f"Ground-truth clips not scored (no face to align): {len(gt_faceless)}: " + ", ".join(gt_faceless), ""]
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
            "no face (not aligned)": [f"{r['clip']} ({r['status'].split(': ', 1)[-1]})"
                                      for r in mine if r["status"].startswith("no_face")],
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
    fields = ["method", "clips", "expected", "missing", "unreadable", "too_short", "no_face", "wrong_rate",
              "face_frames", "face_frames_searched", "face_coverage", "fid"]
    for key, _, _ in SCALARS:
        fields += [key, f"{key}_n"]
    fields += [f"acc_{e}" for e in EMOTIONS]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    clip_fields = ["method", "clip", "status", "frames", "faces", "emotion", "emotion_pred", *(k for k, _, _ in SCALARS),
                   "path", "note"]  # fmt: skip
    with open(out / "per_clip.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=clip_fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = markdown_table(benchmark)
    per_emotion = ["| method | " + " | ".join(EMOTIONS) + " |", "|---" * (len(EMOTIONS) + 1) + "|"]
    per_emotion += ["| " + " | ".join([r["method"], *(_fmt(r[f"acc_{e}"], 2) for e in EMOTIONS)]) + " |"
                    for r in results]  # fmt: skip
    text = f"# MEAD benchmark: protocol {benchmark.protocol_name}\n\n{table}\n"
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
