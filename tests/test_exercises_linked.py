"""The masters score full marks when everything is reached through links.

A virtual environment under a linked folder (on macOS /tmp and /var are links) once made the
grader take torch's own code for the learner's and refuse it (``sys._getframe``): 5 of the 7
masters scored 0 to 2.3 of 10. Here the grader runs with the interpreter of a linked virtual
environment, on a linked folder holding the masters, through the command line as an instructor
runs it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from exercise_grader.spec import masters

ROOT = Path(__file__).resolve().parents[1]


def test_masters_score_full_marks_through_a_linked_interpreter_and_folder(tmp_path):
    venv = tmp_path / "linked-venv"
    venv.symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
    python = venv / "bin" / Path(sys.executable).name
    folder = tmp_path / "linked-submissions"
    folder.symlink_to(ROOT / "solutions", target_is_directory=True)
    out = tmp_path / "grades.csv"
    run = subprocess.run(
        [str(python), "-m", "exercise_grader", "grade", str(folder), "--csv", str(out)]
        + ["--feedback", str(tmp_path / "feedback"), "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # the run used the linked interpreter: its prefix is the link, not where it leads
    probe = subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert probe.stdout.strip() == str(venv)
    rows = list(csv.DictReader(out.open()))
    assert sorted(Path(r["file"]).stem for r in rows) == sorted(masters(ROOT / "solutions"))
    for row in rows:
        assert row["status"] == "ok" and row["total"] == row["possible"], row
