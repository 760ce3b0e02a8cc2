"""A learner's plausible mistakes fail a public check, whose message names the likely cause.

Each mistake below is a small edit of a master notebook's answer cell, the kind of first try a
learner makes. The public tests of that question (the ones ``grader.check`` runs) must fail on it,
and the first failing one must say something that points at the cause: the substring given here.
The unchanged master must pass the same tests, so every mistake is a difference the tests see.

The tests run in this process, as ``grader.check`` runs them in the learner's kernel: the master's
code cells (not its tests, not the demonstrations that train or trace networks) are executed into
a namespace, the mistaken answer cell replaces the right one, and each test function, taken from
the master with otter's own parser (``exercise_grader.spec``), is called with the names it asks
for (``None`` where one is missing, as otter passes it). The sandboxed grader runs the same test
functions; ``tests/test_exercises.py`` grades the masters and the unfilled exercises through it.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from exercise_grader.spec import load_exercise

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


@dataclass(frozen=True)
class Mistake:
    exercise: str  # master notebook's name, e.g. "ex04_resnet_from_scratch"
    question: str  # e.g. "q1"
    edits: tuple[tuple[str, str], ...]  # (text of the master's answer cell, what replaces it)
    message: str  # what the first failing public test's message must contain
    why: str  # the mistake, in words (the test's id)


def mistake(exercise: str, question: str, why: str, message: str, *edits: tuple[str, str]):
    return pytest.param(
        Mistake(exercise, question, edits, message, why), id=f"{exercise[:4]}-{why}"
    )


EX01, EX04, EX06 = "ex01_gradient_flow_equations", "ex04_resnet_from_scratch", "ex06_skip_ablation"

MISTAKES = [
    # ex01 q1: the Jacobian of one branch
    mistake(
        EX01,
        "q1",
        "q1-transposed",
        "transpose",
        ("return W2 @ (slope[:, None] * W1)", "return (W2 @ (slope[:, None] * W1)).T"),
    ),
    mistake(
        EX01,
        "q1",
        "q1-no-tanh-slope",
        "derivative of tanh",
        ("return W2 @ (slope[:, None] * W1)", "return W2 @ W1"),
    ),
    mistake(
        EX01,
        "q1",
        "q1-slope-not-squared",
        "derivative of tanh",
        ("1 - torch.tanh(W1 @ x + b1) ** 2", "1 - torch.tanh(W1 @ x + b1)"),
    ),
    mistake(
        EX01,
        "q1",
        "q1-autograd",
        "does it call autograd",
        (
            "return W2 @ (slope[:, None] * W1)",
            "return torch.autograd.functional.jacobian(\n"
            "        lambda v: W2 @ torch.tanh(W1 @ v + b1), x\n    )",
        ),
    ),
    mistake(
        EX01,
        "q1",
        "q1-autograd-backward",
        "does it call autograd",
        (
            "return W2 @ (slope[:, None] * W1)",
            "v = x.detach().clone().requires_grad_(True)\n"
            "    out = W2 @ torch.tanh(W1 @ v + b1)\n"
            "    return torch.stack([torch.autograd.grad(o, v, retain_graph=True)[0] for o in out])",
        ),
    ),
    # ex01 q2: the Jacobian of the network
    mistake(
        EX01,
        "q2",
        "q2-wrong-order",
        "wrong order",
        (
            "product = (eye + J if residual else J) @ product",
            "product = product @ (eye + J if residual else J)",
        ),
    ),
    mistake(
        EX01,
        "q2",
        "q2-jacobian-at-output",
        "evaluated at x_{i-1}",
        ("zip(blocks, states[:-1], strict=True)", "zip(blocks, states[1:], strict=True)"),
    ),
    mistake(
        EX01,
        "q2",
        "q2-residual-ignored",
        "is the argument residual used",
        ("product = (eye + J if residual else J) @ product", "product = (eye + J) @ product"),
        ("states = forward(blocks, x0, residual)", "states = forward(blocks, x0)"),
    ),
    mistake(
        EX01,
        "q2",
        "q2-plain-at-residual-states",
        "residual network's states",
        ("states = forward(blocks, x0, residual)", "states = forward(blocks, x0)"),
    ),
    mistake(
        EX01,
        "q2",
        "q2-plain-keeps-identity",
        "does the plain twin have a shortcut",
        ("product = (eye + J if residual else J) @ product", "product = (eye + J) @ product"),
    ),
    # ex01 q3: the gradient of a loss
    mistake(
        EX01,
        "q3",
        "q3-not-transposed",
        "did you transpose",
        ("input_output_jacobian(blocks, x0).T @", "input_output_jacobian(blocks, x0) @"),
    ),
    mistake(
        EX01,
        "q3",
        "q3-sign-flipped",
        "opposite way",
        ("@ (x_last - y)", "@ (y - x_last)"),
    ),
    # ex01 q4: backpropagation, block by block
    mistake(
        EX01,
        "q4",
        "q4-reversed",
        "reverse order",
        ("return torch.stack(norms[::-1])", "return torch.stack(norms)"),
    ),
    mistake(
        EX01,
        "q4",
        "q4-residual-ignored",
        "is the argument residual used",
        ("g = g + J.T @ g if residual else J.T @ g", "g = g + J.T @ g"),
        ("states = forward(blocks, x0, residual)", "states = forward(blocks, x0)"),
    ),
    mistake(
        EX01,
        "q4",
        "q4-plain-keeps-shortcut",
        "does the plain twin have a shortcut",
        ("g = g + J.T @ g if residual else J.T @ g", "g = g + J.T @ g"),
    ),
    mistake(
        EX01,
        "q4",
        "q4-plain-at-residual-states",
        "residual network's states",
        ("states = forward(blocks, x0, residual)", "states = forward(blocks, x0)"),
    ),
    # ex04 q1: the basic block
    mistake(
        EX04,
        "q1",
        "q1-relu-before-addition",
        "is there a ReLU before the addition",
        ("out = self.bn2(self.conv2(out))", "out = self.relu(self.bn2(self.conv2(out)))"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-bn-after-addition",
        "is the shortcut added before bn2",
        ("out = self.bn2(self.conv2(out))", "out = self.conv2(out)"),
        ("return self.relu(out + shortcut)", "return self.relu(self.bn2(out + shortcut))"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-no-relu-at-the-end",
        "ReLU comes last",
        ("return self.relu(out + shortcut)", "return out + shortcut"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-no-relu-in-the-middle",
        "is there a ReLU between them",
        ("out = self.relu(self.bn1(self.conv1(x)))", "out = self.bn1(self.conv1(x))"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-relu-before-bn",
        "in which order",
        ("out = self.relu(self.bn1(self.conv1(x)))", "out = self.bn1(self.relu(self.conv1(x)))"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-stride-on-conv2",
        "which convolution takes the block's stride",
        (
            "self.conv1 = conv3x3(inplanes, planes, stride)",
            "self.conv1 = conv3x3(inplanes, planes)",
        ),
        ("self.conv2 = conv3x3(planes, planes)", "self.conv2 = conv3x3(planes, planes, stride)"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-downsample-unused",
        "is downsample applied to the shortcut",
        ("shortcut = x if self.downsample is None else self.downsample(x)", "shortcut = x"),
    ),
    mistake(
        EX04,
        "q1",
        "q1-no-shortcut",
        "the shortcut: is it added",
        ("return self.relu(out + shortcut)", "return self.relu(out)"),
    ),
    # ex04 q2: the bottleneck block
    mistake(
        EX04,
        "q2",
        "q2-relu-before-bn-in-the-middle",
        "in which order",
        (
            "out = self.relu(self.bn2(self.conv2(out)))",
            "out = self.bn2(self.relu(self.conv2(out)))",
        ),
    ),
    mistake(
        EX04,
        "q2",
        "q2-relu-before-addition",
        "is there a ReLU before the addition",
        ("out = self.bn3(self.conv3(out))", "out = self.relu(self.bn3(self.conv3(out)))"),
    ),
    mistake(
        EX04,
        "q2",
        "q2-no-relu-after-bn2",
        "is there a ReLU between them",
        ("out = self.relu(self.bn2(self.conv2(out)))", "out = self.bn2(self.conv2(out))"),
    ),
    mistake(
        EX04,
        "q2",
        "q2-stride-on-conv1",
        "conv2 only",
        (
            "self.conv1 = conv1x1(inplanes, planes)",
            "self.conv1 = conv1x1(inplanes, planes, stride)",
        ),
        ("self.conv2 = conv3x3(planes, planes, stride)", "self.conv2 = conv3x3(planes, planes)"),
    ),
    mistake(
        EX04,
        "q2",
        "q2-bn-after-addition",
        "is the shortcut added before bn3",
        ("out = self.bn3(self.conv3(out))", "out = self.conv3(out)"),
        ("return self.relu(out + shortcut)", "return self.relu(self.bn3(out + shortcut))"),
    ),
    mistake(
        EX04,
        "q2",
        "q2-no-expansion",
        "parameters",
        (
            "self.conv3 = conv1x1(planes, planes * self.expansion)",
            "self.conv3 = conv1x1(planes, planes)",
        ),
        ("self.bn3 = nn.BatchNorm2d(planes * self.expansion)", "self.bn3 = nn.BatchNorm2d(planes)"),
    ),
    # ex04 q3: the network
    mistake(
        EX04,
        "q3",
        "q3-layer1-strided",
        "strides and shortcuts",
        (
            "self._make_layer(block, 64, layers[0])",
            "self._make_layer(block, 64, layers[0], stride=2)",
        ),
    ),
    mistake(
        EX04,
        "q3",
        "q3-maxpool-skipped",
        "never runs maxpool",
        (
            "x = self.maxpool(self.relu(self.bn1(self.conv1(x))))",
            "x = self.relu(self.bn1(self.conv1(x)))",
        ),
    ),
    mistake(
        EX04,
        "q3",
        "q3-projection-only-for-strides",
        "get a downsample",
        ("if stride != 1 or self.inplanes != out_planes:", "if stride != 1:"),
    ),
    mistake(
        EX04,
        "q3",
        "q3-stem-at-stride-1",
        "first module whose output differs",
        (
            "nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)",
            "nn.Conv2d(3, 64, kernel_size=7, stride=1, padding=3, bias=False)",
        ),
    ),
    mistake(
        EX04,
        "q3",
        "q3-resnet50-from-basic-blocks",
        "Bottlenecks of this notebook",
        (
            "return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)",
            "return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)",
        ),
    ),
    # ex06 q1: the skips
    mistake(
        EX06,
        "q1",
        "q1-stride-not-checked",
        "should raise ValueError",
        ("(in_ch != out_ch or stride != 1)", "(in_ch != out_ch)"),
    ),
    mistake(
        EX06,
        "q1",
        "q1-gate-bias-not-set",
        "should start at -2",
        ("nn.init.constant_(self.gate.bias, gate_bias)", "pass"),
    ),
    mistake(
        EX06,
        "q1",
        "q1-gate-swapped",
        "T * fx + (1 - T) * x",
        ("return t * fx + (1 - t) * x", "return t * x + (1 - t) * fx"),
    ),
    mistake(
        EX06,
        "q1",
        "q1-projection-without-bn",
        "batch norm parameters",
        (
            "AddSkip(rl.projection(in_ch, out_ch, stride))",
            "AddSkip(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False))",
        ),
    ),
    # ex06 q2: the block and the network
    mistake(
        EX06,
        "q2",
        "q2-stride-on-second-conv",
        "which convolution takes the block's stride",
        ("rl.conv3x3(in_ch, out_ch, stride),", "rl.conv3x3(in_ch, out_ch),"),
        ("rl.conv3x3(out_ch, out_ch),", "rl.conv3x3(out_ch, out_ch, stride),"),
    ),
    mistake(
        EX06,
        "q2",
        "q2-stem-at-stride-1",
        "step 1 of the recipe",
        ("rl.conv3x3(1, width, stride=2),", "rl.conv3x3(1, width),"),
    ),
    mistake(
        EX06,
        "q2",
        "q2-branch-without-relu",
        "where is the ReLU",
        ("nn.ReLU(),\n            rl.conv3x3(out_ch, out_ch),", "rl.conv3x3(out_ch, out_ch),"),
    ),
    mistake(
        EX06,
        "q2",
        "q2-stem-without-relu",
        "does the stem end with its ReLU",
        ("nn.BatchNorm2d(width),\n        nn.ReLU(),", "nn.BatchNorm2d(width),"),
    ),
    mistake(
        EX06,
        "q2",
        "q2-no-relu-after-join",
        "forward should return",
        ("return torch.relu(self.skip(x, self.branch(x)))", "return self.skip(x, self.branch(x))"),
    ),
    # ex06 q3: the ablation
    mistake(
        EX06,
        "q3",
        "q3-one-batch-iterator-for-all",
        "its own batch_indices",
        ("curves = {}", "curves, batches = {}, batch_indices(len(images), batch_size, seed)"),
        ("enumerate(batch_indices(len(images), batch_size, seed))", "enumerate(batches)"),
    ),
    mistake(
        EX06,
        "q3",
        "q3-seeded-once",
        "torch.manual_seed(seed) called before building each",
        ("curves = {}", "curves = {}\n    torch.manual_seed(seed)"),
        ("        torch.manual_seed(seed)\n", ""),
    ),
    mistake(
        EX06,
        "q3",
        "q3-eval-mode",
        "eval mode",
        ("build_net(kind, depth).train()", "build_net(kind, depth).eval()"),
    ),
    mistake(
        EX06,
        "q3",
        "q3-no-zero-grad",
        "zero_grad",
        ("optimizer.zero_grad()\n            loss.backward()", "loss.backward()"),
    ),
    mistake(
        EX06,
        "q3",
        "q3-one-loss-short",
        "should be a list of 4 losses",
        ("if step == steps:", "if step == steps + 1:"),
    ),
]


@dataclass(frozen=True)
class Variant:
    exercise: str
    question: str
    edits: tuple[tuple[str, str], ...]
    demonstrations: bool  # also run the cells that use this answer in `with uses_answer(...)`


def variant(exercise: str, question: str, why: str, *edits: tuple[str, str], demonstrations=False):
    return pytest.param(
        Variant(exercise, question, edits, demonstrations), id=f"{exercise[:4]}-{why}"
    )


#: Right answers written differently from the master: every test of the question, public and
#: hidden, passes them, and the demonstrations that use them run (ex04's once crashed on an
#: extra nn.Flatten). ex06's demonstrations train for seconds and need each other: not run here.
VARIANTS = [
    variant(
        EX04,
        "q1",
        "q1-functional-relu-and-in-place-add",
        ("out = self.relu(self.bn1(self.conv1(x)))", "out = torch.relu(self.bn1(self.conv1(x)))"),
        ("return self.relu(out + shortcut)", "out += shortcut\n        return out.relu_()"),
    ),
    variant(
        EX04,
        "q3",
        "q3-flatten-module",
        ("self.fc = nn.Linear(", "self.flatten = nn.Flatten()\n        self.fc = nn.Linear("),
        ("self.fc(torch.flatten(self.avgpool(x), 1))", "self.fc(self.flatten(self.avgpool(x)))"),
        demonstrations=True,
    ),
    variant(
        EX06,
        "q2",
        "q2-plain-layers-in-place-relu",
        (
            "rl.conv3x3(in_ch, out_ch, stride),",
            "nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),",
        ),
        (
            "nn.BatchNorm2d(width),\n        nn.ReLU(),",
            "nn.BatchNorm2d(width),\n        nn.ReLU(True),",
        ),
    ),
]


def _answer_cells(master: Path) -> tuple[list[tuple[str | None, str, str]], dict[str, int]]:
    """The master's code cells as (question, role, source), role "answer", "test" or "other";
    and, per question, the index of its (last) answer cell."""
    cells, question, section, last_answer = [], None, None, {}
    for cell in json.loads(master.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            first = text.strip().splitlines()[0] if text.strip() else ""
            if first == "# BEGIN QUESTION":
                question = next(
                    line.split(":", 1)[1].strip()
                    for line in text.splitlines()
                    if line.startswith("name:")
                )
            elif first == "# END QUESTION":
                question = None
            elif first in ("# BEGIN SOLUTION", "# BEGIN TESTS"):
                section = "answer" if first == "# BEGIN SOLUTION" else "test"
            elif first in ("# END SOLUTION", "# END TESTS"):
                section = None
        elif cell["cell_type"] == "code":
            role = section if question and section else "other"
            if role == "answer":
                last_answer[question] = len(cells)
            cells.append((question, role, text))
    return cells, last_answer


@pytest.fixture(autouse=True)
def _torch_threads_kept():
    """The masters' setup cells choose torch's thread count (``rl.setup``); other test files
    run in this process after these, with the count they expect."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@cache
def _master_namespace(exercise: str) -> dict:
    """The names the master's code defines, as a learner's kernel has them after running it.

    Demonstrations (cells that use the answers in ``with uses_answer(...)``) are left out: they
    train or trace networks and define nothing the tests use.
    """
    cells, _ = _answer_cells(SOLUTIONS / f"{exercise}.ipynb")
    ns: dict = {"__name__": "__main__"}
    for _, role, text in cells:
        if role != "test" and "uses_answer(" not in text:
            exec(compile(text, f"<{exercise}>", "exec"), ns)  # noqa: S102 - the book's own code
    return ns


def _with_mistake(m: Mistake | Variant) -> dict:
    """The master's namespace with the question's answer cell replaced by the edited one."""
    cells, last_answer = _answer_cells(SOLUTIONS / f"{m.exercise}.ipynb")
    text = cells[last_answer[m.question]][2]
    for old, new in m.edits:
        assert text.count(old) == 1, (
            f"{m.exercise} {m.question}: {old!r} is not once in the answer cell"
        )
        text = text.replace(old, new)
    ns = dict(_master_namespace(m.exercise))
    exec(compile(text, f"<{m.exercise} {m.question}, mistaken>", "exec"), ns)  # noqa: S102
    return ns


def _public_failures(exercise: str, question: str, ns: dict) -> list[tuple[str, str]]:
    """(test function, message) for each public test of ``question`` that fails in ``ns``."""
    spec = load_exercise(SOLUTIONS / f"{exercise}.ipynb")
    return _failures([t for t in spec.question(question).tests if not t.hidden], ns)


def _failures(tests, ns: dict) -> list[tuple[str, str]]:
    """(test function, message) for each of ``tests`` that fails in ``ns``, in their order."""
    failures = []
    for test in tests:
        scope = dict(ns)
        exec(compile(test.source, f"<{test.function}>", "exec"), scope)  # noqa: S102
        try:
            scope[test.function](*(ns.get(arg) for arg in test.args))
        except Exception as err:  # noqa: BLE001 - a failing check, whatever it raised
            failures.append((test.function, f"{type(err).__name__}: {err}"))
    return failures


@pytest.mark.parametrize(
    ("exercise", "question"),
    sorted({(p.values[0].exercise, p.values[0].question) for p in MISTAKES}),
)
def test_the_master_passes_the_public_tests(exercise, question):
    assert _public_failures(exercise, question, _master_namespace(exercise)) == []


@pytest.mark.parametrize("m", MISTAKES)
def test_a_mistake_fails_a_public_test_that_names_its_cause(m: Mistake):
    failures = _public_failures(m.exercise, m.question, _with_mistake(m))
    assert failures, f"{m.exercise} {m.question}: every public test passes the mistake {m.why}"
    test, message = failures[0]
    assert m.message in message, (
        f"{m.exercise} {m.question}, mistake {m.why}: the first failing public test, {test}, "
        f"should mention {m.message!r}; it says: {message}"
    )


@pytest.mark.parametrize("m", VARIANTS)
def test_a_right_answer_written_differently_passes_and_its_demonstrations_run(m: Variant):
    ns = _with_mistake(m)
    spec = load_exercise(SOLUTIONS / f"{m.exercise}.ipynb")
    assert _failures(spec.question(m.question).tests, ns) == []
    if not m.demonstrations:
        return
    cells, _ = _answer_cells(SOLUTIONS / f"{m.exercise}.ipynb")
    demos = [text for _, _, text in cells if f'uses_answer("{m.question}")' in text]
    assert demos, f"{m.exercise} has no demonstration that uses {m.question}"
    ns["uses_answer"] = lambda *questions: contextlib.nullcontext()  # raise, do not print
    for text in demos:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(text, f"<{m.exercise} demonstration>", "exec"), ns)  # noqa: S102
