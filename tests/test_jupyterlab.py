"""A chapter run in JupyterLab shows its own numbers in the prose, not raw markup.

Starts the venv's JupyterLab (with jupyterlab-myst, as `make lab` and Binder do) on 127.0.0.1,
opens a copy of a chapter in headless Chromium, runs all cells, saves, and checks:

- every ``{eval}`num.x``` in the Markdown cells was evaluated by the kernel (jupyterlab-myst
  stores the results in the cell's metadata) and shows the value, not the expression;
- the values are the ones the chapter's own ``num.show()`` tables printed in the same run.

Chapter 3 is used: it trains nothing and runs in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import shown_tables, unavailable

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "chapters/03_blocks.ipynb"
EVAL = re.compile(r"\{eval\}`([^`]*)`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a folder with a copy of the chapter; yields (url, folder)."""
    folder = tmp_path_factory.mktemp("lab")
    (folder / "chapters").mkdir()
    shutil.copy(ROOT / CHAPTER, folder / CHAPTER)
    # Start the notebook's kernel without asking, and no news pop-up over the notebook.
    settings = folder / ".jupyter-config" / "lab" / "user-settings" / "@jupyterlab"
    for extension, plugin, values in [
        ("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
        ("apputils-extension", "notification", {"fetchNews": "false"}),
    ]:
        (settings / extension).mkdir(parents=True, exist_ok=True)
        (settings / extension / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "JUPYTER_CONFIG_DIR": str(folder / ".jupyter-config"),
        "RESNET_BOOK_PROFILE": "quick",
    }
    log = open(folder / "server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={folder}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            "--allow-root",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    unavailable(
                        "JupyterLab did not start:\n" + (folder / "server.log").read_text()[-2000:]
                    )
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", folder
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_chapter_in_jupyterlab_shows_its_numbers(lab, browser) -> None:
    url, folder = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/lab/tree/{CHAPTER}")
    page.wait_for_function(
        "() => window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=90_000
    )
    # The kernel may be replaced once while the notebook opens: wait for one that is connected
    # and idle, and a moment more, or the cells go to a kernel that is going away.
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return k && k.connectionStatus === 'connected' && k.status === 'idle';
        }""",
        timeout=90_000,
    )
    page.wait_for_timeout(3000)
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    # Done when every code cell has run and no Markdown cell still shows an expression.
    state = """() => {
        const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
            .map(p => p.textContent.trim());
        const raw = Array.from(document.querySelectorAll('.jp-MarkdownCell code'))
            .map(c => c.textContent.trim()).filter(t => /^num\\.\\w+$/.test(t));
        // "[*]:" runs or waits, "[ ]:" has not run; a collapsed input shows no prompt
        return {waiting: prompts.filter(p => /\\[(\\*|\\s*)\\]/.test(p)), raw: raw};
    }"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"() => {{ const s = ({state})(); return !s.waiting.length && !s.raw.length; }}",
            timeout=300_000,
            polling=1000,
        )
    except PlaywrightTimeout:
        # $SCREENSHOTS if set (the Actions workflow keeps them), else next to the lab's files
        shots = Path(os.environ.get("SCREENSHOTS") or folder)
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "jupyterlab.png"))
        pytest.fail(f"JupyterLab did not finish: {page.evaluate(state)} (screenshot in {shots})")
    rendered = page.locator(".jp-MarkdownCell").all_inner_texts()
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(2000)
    page.close()

    assert not any("{eval}" in text for text in rendered)
    cells = json.loads((folder / CHAPTER).read_text())["cells"]
    shown: dict[str, str] = {}
    quoted = 0
    for i, cell in enumerate(cells):
        shown.update(shown_tables(cell))
        expressions = (
            EVAL.findall("".join(cell["source"])) if cell["cell_type"] == "markdown" else []
        )
        if not expressions:
            continue
        results = {
            e["expression"]: e["result"] for e in cell["metadata"].get("user_expressions", [])
        }
        for expression in expressions:
            quoted += 1
            result = results.get(expression)
            assert result and result["status"] == "ok", (i, expression, result)
            value = result["data"]["text/plain"].strip("'\"")
            assert value == shown[expression].replace("\\|", "|"), (expression, value)
    assert quoted > 10, f"only {quoted} quoted numbers found in {CHAPTER}"
