"""The claims of docs/jax-state.md, checked in its script and in the rendered page."""

from bs4 import BeautifulSoup
from conftest import floats_after, run_script

PAGE = "jax-state"


def test_jitted_stateful_counter_is_stuck_at_one():
    out = run_script("jax_state")
    jit_part = out.split("stateful counter, jax.jit:")[1].split("explicit state")[0]
    assert "values: [1, 1, 1]" in jit_part
    assert jit_part.count("count's Python body runs") == 1, "the body runs once, while tracing"
    assert "counter.n afterwards: 1" in jit_part


def test_eager_stateful_counter_counts():
    eager_part = run_script("jax_state").split("stateful counter, jax.jit:")[0]
    assert "values: [1, 2, 3]" in eager_part
    assert eager_part.count("count's Python body runs") == 3


def test_explicit_state_counts_eagerly_and_under_jit():
    out = run_script("jax_state")
    assert "explicit state, eager: [1, 2, 3]" in out
    assert "explicit state, jax.jit: [1, 2, 3]" in out


def test_keys_repeat_when_reused_and_differ_when_split():
    out = run_script("jax_state")
    assert "reused key gives the same numbers: True" in out
    assert "split keys give different numbers: True" in out


def cell_outputs(site):
    page = BeautifulSoup(site.page("jax-state"), "html.parser")
    return [
        cell.select_one("div.cell_output").get_text() for cell in page.select("div.cell:has(div.cell_output)")
    ]


def test_page_shows_one_one_one_then_one_two_three(site):
    outputs = [output.split() for output in cell_outputs(site)]
    body = ["(count's", "Python", "body", "runs)"]
    assert outputs[0] == [*body, "1", *body, "2", *body, "3"]
    assert outputs[1] == [*body, "1", "1", "1"], "under jit the body runs once and returns 1 each time"
    assert outputs[2] == ["1"], "the attribute was written once, while tracing"
    assert ["1", "2", "3"] in outputs


def test_page_shows_the_compiled_programs(site):
    outputs = cell_outputs(site)
    assert any("{ lambda ; . let  in (1:i32[],) }" in output for output in outputs), "a constant, no input"
    assert any("add a 1:i32[]" in output for output in outputs), "the explicit version adds to its input"


def test_page_exercise_running_mean_is_traced_once_and_still_counts(site):
    out = site.output_with(PAGE, "running_mean's Python body runs")
    assert out.count("(running_mean's Python body runs)") == 1, "traced once"
    assert floats_after("mean", out) == [2.0, 3.0, 4.0], "the means of 2, then 2 and 4, then 2, 4 and 6"
    assert "final state (total, count): 12.0 3" in out
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "running_mean's Python body runs" in solution.get_text(), "the output is the hidden solution's"


def test_numpy_and_pytorch_generators_are_state_too_global_or_explicit():
    out = run_script("jax_state")
    assert "NumPy's global generator advances: True" in out
    assert "a NumPy default_rng Generator advances: True" in out
    assert "a torch.Generator advances: True" in out


def test_page_shows_global_and_explicit_generators_advancing(site):
    out = site.output_with(PAGE, "default_rng object:")
    rows = {line.split(":")[0].strip(): line.split(":", 1)[1] for line in out.strip().splitlines()}
    assert set(rows) == {"NumPy, global generator", "NumPy, default_rng object", "PyTorch, Generator object"}
    for label, numbers in rows.items():
        first, second = numbers.split("] [")
        assert first.strip(" [") != second.strip(" ]"), f"{label}: the second draw differs from the first"
