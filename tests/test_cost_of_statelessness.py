"""The claims of docs/cost-of-statelessness.md, checked in its script and in the rendered page.

Nothing here says which style is faster: that depends on the machine. The tests check that the six
styles compute the same thing, that every style and size was timed, and that the timing outputs, and
only they, are marked as varying from build to build.
"""

import re
from importlib.metadata import version

import pytest
from conftest import import_script, run_script, section

PAGE = "cost-of-statelessness"
SCRIPT = "cost_of_statelessness"
STYLES = [
    "PyTorch eager",
    "PyTorch + torch.compile",
    "Linen + jax.jit",
    "NNX + nnx.jit",
    "NNX + nnx.jit (tree)",
    "NNX split + jax.jit",
]
SIZES = ["small", "larger"]
VARYING = "tag_varying-output"
# A time as the page prints it: "455 µs", "34.81 ms", "2.63 s".
TIME = r"(\d+(?:\.\d+)?) (µs|ms|s)\b"
SECONDS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}


def loss_lines(text: str) -> dict[tuple[str, str], list[float]]:
    """{(size, style): [loss of step 1, loss of step 2]} from the loss check's lines."""
    found = {}
    for size in SIZES:
        for style in STYLES:
            match = re.search(rf"^{size}\s+{re.escape(style)}\s+loss (\S+)\s+loss (\S+)$", text, re.M)
            assert match, (size, style)
            found[size, style] = [float(match[1]), float(match[2])]
    return found


def timing_rows(text: str) -> dict[tuple[str, str], dict[str, float]]:
    """{(size, style): {"first": s, "median": s, "q1": s, "q3": s}} from the tables, one per size."""
    rows = {}
    for size in SIZES:
        table = text.split(f"{size} network\n")[1].split("\n\n")[0]
        for style in STYLES:
            pattern = rf"^{re.escape(style)}\s+{TIME}\s+{TIME}\s+{TIME} – {TIME}\s+×\d+\.\d+$"
            match = re.search(pattern, table, re.M)
            assert match, (size, style, table)
            values = [float(match[i]) * SECONDS[match[i + 1]] for i in range(1, 9, 2)]
            rows[size, style] = dict(zip(["first", "median", "q1", "q3"], values, strict=True))
    for label in [
        "nnx.jit step / split step",
        "nnx.jit tree step / split step",
        "torch.compile step / eager step",
    ]:
        assert re.search(rf"^{re.escape(label)}: small ×\d+\.\d+, larger ×\d+\.\d+$", text, re.M), label
    for label in ["Linen first call / median", "torch.compile first call / median"]:
        assert re.search(rf"^{re.escape(label)}: small ×\d+, larger ×\d+$", text, re.M), label
    return rows


def assert_same_losses(losses):
    for size in SIZES:
        reference = losses[size, STYLES[0]]
        for style in STYLES:
            assert losses[size, style] == reference, (size, style)
        assert reference[1] < reference[0], "the first step lowered the loss"


# -- The script --------------------------------------------------------------------------------


def test_script_styles_agree_on_the_loss():
    out = section(run_script(SCRIPT), "Same losses")
    assert_same_losses(loss_lines(out))
    for size in SIZES:
        assert f"{size}: largest difference from PyTorch below 1e-5: True" in out


def test_script_times_every_style_and_size():
    out = run_script(SCRIPT)
    rows = timing_rows(section(out, "Timings"))
    assert len(rows) == len(STYLES) * len(SIZES)
    for row in rows.values():
        assert row["median"] > 0 and row["first"] > 0
        assert row["q1"] <= row["median"] <= row["q3"]
    assert "every median positive: True" in out


def test_script_runs_on_one_core():
    out = section(run_script(SCRIPT), "Machine")
    assert "PyTorch threads: 1" in out
    assert "cores this process may use: 1" in out
    for package in ["jax", "flax", "optax", "torch"]:
        assert f"{package} {version(package)}" in out


def test_script_torch_compile_writes_the_state_back_in_place():
    out = section(run_script(SCRIPT), "torch.compile and the state in the objects")
    assert "BatchNorm batches counted: 3" in out
    assert "running_mean moved from 0: True" in out
    assert "Adam steps of the first weight: 3" in out
    assert "Adam state of the first weight: ['exp_avg', 'exp_avg_sq', 'step']" in out
    for what in ["running_mean", "parameters", "exp_avg"]:
        assert f"same {what} as eager: True" in out, what
    assert "after model.eval() the compiled prediction compiles again: True" in out
    assert (
        "the compiled step: 3 graphs, 2 graph breaks, because: ['Unsupported Tensor.backward() call']" in out
    )


def test_script_trains_two_models_in_one_call():
    out = section(run_script(SCRIPT), "Two models in one step")
    assert "one vmapped step matches two separate steps: True" in out


@pytest.fixture(scope="module")
def script():
    return import_script(SCRIPT)


def test_functions_agree_and_time(script):
    steppers = script.make_steppers("small")
    losses, gap, first = script.check_same_losses(steppers)
    assert gap < 1e-5 and set(first) == set(STYLES)
    results = script.time_styles(steppers, first, repeats=4, warmup=1)
    assert all(len(t.times) == 4 and t.median > 0 for t in results.values())
    table = script.timing_table({"small": results, "larger": results})
    assert set(timing_rows(table)) == {(size, style) for size in SIZES for style in STYLES}


def test_vmapped_step_matches_separate_steps(script):
    losses, same = script.vmapped_matches_separate()
    assert same and losses[0] != losses[1]


# -- The rendered page -------------------------------------------------------------------------


def test_page_styles_agree_on_the_loss_as_the_script_does(site):
    text = site.output_with(PAGE, "largest difference from PyTorch")
    losses = loss_lines(text)
    assert_same_losses(losses)
    assert losses == loss_lines(section(run_script(SCRIPT), "Same losses"))
    for size in SIZES:
        assert f"{size}: largest difference from PyTorch below 1e-5: True" in text


def test_page_times_every_style_and_size(site):
    rows = timing_rows(site.output_with(PAGE, "vs PyTorch"))
    assert len(rows) == len(STYLES) * len(SIZES)
    for row in rows.values():
        assert row["median"] > 0 and row["first"] > 0
        assert row["q1"] <= row["median"] <= row["q3"]


def test_timing_cells_and_only_they_are_marked_varying(site):
    cells = site.soup(PAGE).select("div.cell")
    varying = [cell for cell in cells if VARYING in cell["class"]]
    table, plot, solution = varying  # the table, the plot and the exercise's timed solution
    assert "vs PyTorch" in table.select_one("div.cell_output").get_text()
    assert plot.select_one("div.cell_output img")
    assert "tag_hide-cell" in solution["class"]
    for cell in cells:
        output = cell.select_one("div.cell_output")
        text = output.get_text() if output else ""
        if VARYING not in cell["class"]:
            assert not re.search(TIME, text), f"an untagged cell prints a time:\n{text}"
            assert not (output and output.select("img")), "an untagged cell draws a figure"


def test_machine_cell_is_stable_and_complete(site):
    cell = next(cell for cell in site.soup(PAGE).select("div.cell") if "PyTorch threads" in cell.get_text())
    assert VARYING not in cell["class"]
    text = cell.select_one("div.cell_output").get_text()
    assert re.search(r"^CPU: .+, \d+ logical cores", text, re.M)
    assert "PyTorch threads: 1" in text and "cores this process may use: 1" in text
    for package in ["jax", "jaxlib", "flax", "optax", "torch", "numpy"]:
        assert f"{package} {version(package)}" in text


def test_page_shows_torch_compile_writing_the_state_back(site):
    out = site.output_with(PAGE, "compiled: BatchNorm batches counted:")
    assert "compiled: BatchNorm batches counted: 3" in out
    assert "compiled: Adam state of the first weight: ['exp_avg', 'exp_avg_sq', 'step'] after 3 steps" in out
    expected = "{'running_mean': True, 'running_var': True, 'parameters': True, \"Adam's exp_avg\": True}"
    assert f"the same as eager, within 1e-6: {expected}" in out
    graphs = site.output_with(PAGE, "graph breaks:")
    assert graphs.split("\n")[1:3] == [
        "graphs: 3 | graph breaks: 2",
        "why: ['Unsupported Tensor.backward() call']",
    ]
    guard = site.output_with(PAGE, "compiles again")
    assert "after model.eval() the compiled prediction compiles again: True" in guard


def test_page_prints_no_log_line_of_the_compiler(site):
    """torch.compile logs with timestamps; nothing of it reaches the page."""
    for output in site.outputs(PAGE):
        assert not re.search(r"^[WIE]\d{4} ", output, re.M), output


def test_page_plot_has_alt_text(site):
    (image,) = site.soup(PAGE).select(f"div.cell.{VARYING} div.cell_output img")
    alt = image.get("alt", "")
    assert len(alt) > 100
    assert all(name in alt for name in ["PyTorch eager", "Linen", "nnx.jit", "split", "first call"])


def test_page_shows_the_three_frameworks_in_tabs(site):
    soup = site.soup(PAGE)
    labels = [label.get_text(strip=True) for label in soup.select(".sd-tab-set > label")]
    assert labels == ["PyTorch", "Flax Linen", "Flax NNX"]


def test_page_exercise_solution_is_hidden_and_checks_itself(site):
    soup = site.soup(PAGE)
    (cell,) = soup.select("div.cell.tag_hide-cell")
    assert cell.select_one("details"), "the solution is folded away"
    text = site.output_with(PAGE, "one vmapped step matches two separate steps")
    assert "one vmapped step matches two separate steps: True" in text
    assert re.search(rf"one vmapped call: median {TIME}", text)
    assert re.search(rf"two separate calls: median {TIME}", text)
    script_losses = section(run_script(SCRIPT), "Two models in one step").split("\n")[1]
    assert script_losses in text, "the page trains the same two models as the script"
    headings = [h.get_text(strip=True).rstrip("#") for h in soup.select("article h2")]
    assert headings.index("Exercise") == headings.index("Summary") - 1
