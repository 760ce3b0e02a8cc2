"""Grading output: the terminal table, the CSV file and one feedback file per submission."""

from __future__ import annotations

import csv
from pathlib import Path

from .grade import Result


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:g}"


def question_names(results: list[Result]) -> list[str]:
    names: list[str] = []
    for r in results:
        for q in r.questions:
            if q.name not in names:
                names.append(q.name)
    return sorted(names, key=lambda n: (len(n), n))


def table(results: list[Result]) -> str:
    qs = question_names(results)
    header = ["file", "exercise", "status", "score", *qs, "time"]
    rows = [
        [
            r.path.name,
            r.exercise or "?",
            r.status,
            f"{_num(r.total)}/{_num(r.possible)}" if r.possible is not None else "-",
            *[_num(r.score_of(q)) for q in qs],
            f"{r.seconds:.1f}s",
        ]
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(results: list[Result], path: Path) -> None:
    qs = question_names(results)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "exercise", "status", "total", "possible", *qs, "message"])
        for r in results:
            writer.writerow(
                [
                    str(r.path),
                    r.exercise or "",
                    r.status,
                    _num(r.total) if r.graded else "",
                    _num(r.possible),
                    *[_num(r.score_of(q)) for q in qs],
                    "; ".join(r.problems + r.flags),
                ]
            )


def feedback(r: Result) -> str:
    """What a learner reads about one submission: per question, which tests passed and why not."""
    lines = [f"# Feedback: {r.path.name}", ""]
    if r.exercise:
        lines.append(f"Exercise: {r.exercise}")
    score = f"{_num(r.total)} / {_num(r.possible)}" if r.possible is not None else "not graded"
    lines += [f"Score: {score}", f"Status: {r.status}"]
    if r.isolation:
        lines.append(f"Isolation: {r.isolation}")
    lines.append("")
    if r.problems or r.flags:
        lines.append("## What went wrong")
        lines += [f"- {p}" for p in r.problems + r.flags]
        lines.append("")
    if r.cell_errors:
        lines.append("## Errors in your code cells")
        lines += [f"- {e}" for e in r.cell_errors]
        lines.append("")
    for q in r.questions:
        lines.append(f"## {q.name}: {_num(r.score_of(q.name))} / {_num(q.possible)}")
        for t in q.tests:
            kind = "hidden" if t.test.hidden else "public"
            mark = "passed" if t.passed else t.status
            # the label grader.check prints in the notebook ("q3 - 1"), then the test's name
            label = f"{t.test.name} `{t.test.function}`"
            lines.append(f"- {label} ({kind}, {_num(t.test.points)} pt): {mark}")
            if not t.passed and t.message:
                lines += [f"    {line}" for line in t.message.splitlines()[:8]]
        lines.append("")
    return "\n".join(lines)


def write_feedback(results: list[Result], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    stems = [r.path.stem for r in results]
    for r in results:
        stem = r.path.stem
        if stems.count(stem) > 1:  # same name in two folders: keep both
            stem = f"{r.path.parent.name}_{stem}"
        target = folder / f"{stem}.feedback.md"
        target.write_text(feedback(r))
        written.append(target)
    return written
