"""The claims of docs/where-state-lives.md, checked in its script and in the rendered page."""

import re

import pytest
from conftest import import_script, run_script, section

PAGE = "where-state-lives"
FRAMEWORKS = ["PyTorch", "Linen", "NNX"]
# The counts the page states in its prose: (numbers, bytes) of each group, per framework.
TOTALS = {
    "PyTorch": {"trainable parameters": (163, 652), "other model state": (33, 136),
                "optimizer moments": (326, 1304), "optimizer step counts": (6, 24)},
    "Linen": {"trainable parameters": (163, 652), "other model state": (32, 128),
              "optimizer moments": (326, 1304), "optimizer step counts": (2, 8)},
    "NNX": {"trainable parameters": (163, 652), "other model state": (34, 140),
            "optimizer moments": (326, 1304), "optimizer step counts": (2, 8)},
}  # fmt: skip


@pytest.fixture(scope="module")
def script():
    return import_script("where_state_lives")


@pytest.fixture(scope="module")
def rows(script):
    rows, _ = script.run_all()
    return rows


def paths(rows):
    return [row.path for row in rows]


# -- The script --------------------------------------------------------------------------------


def test_pytorch_adam_state_is_empty_before_the_first_step():
    assert "optimizer.state_dict()['state'] is empty: True" in run_script("where_state_lives")


def test_totals_table_has_the_pages_numbers():
    totals = section(run_script("where_state_lives"), "Totals (numbers / bytes)")
    for group in TOTALS["PyTorch"]:
        line = next(line for line in totals.splitlines() if line.startswith(group))
        cells = [tuple(map(int, cell)) for cell in re.findall(r"(\d+) / (\d+) B", line)]
        assert cells == [TOTALS[name][group] for name in FRAMEWORKS], line


def test_checks_pass_in_the_script():
    checks = section(run_script("where_state_lives"), "Checks")
    assert "trainable parameters agree: 163 numbers, 652 bytes in each framework" in checks
    assert "Adam moments are twice the parameters: 326 numbers, 1304 bytes in each" in checks


def test_the_exercise_prediction_holds_in_the_script():
    exercise = section(run_script("where_state_lives"), "Exercise: a second BatchNorm")
    assert "counts as predicted: True" in exercise
    assert "PyTorch: trainable parameters 169 / 676 B, other model state 40 / 168 B" in exercise


def test_model_state_paths_in_each_framework(rows):
    torch_model, _ = rows["PyTorch"]
    assert paths(torch_model) == [
        "dense1.weight", "dense1.bias", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
        "norm.num_batches_tracked", "dense2.weight", "dense2.bias",
    ]  # fmt: skip
    counter = next(row for row in torch_model if row.path == "norm.num_batches_tracked")
    assert (counter.dtype, counter.nbytes, counter.kind) == ("int64", 8, "batch counter (buffer)")
    linen_model, _ = rows["Linen"]
    assert sorted(p for p in paths(linen_model) if p.startswith("batch_stats")) == [
        "batch_stats/norm/mean",
        "batch_stats/norm/var",
    ]
    assert not any("rng" in p or "dropout" in p for p in paths(linen_model)), "Linen keeps no random state"
    nnx_model, _ = rows["NNX"]
    kinds = {row.path: row.kind for row in nnx_model}
    assert kinds["norm/mean"] == "batch stat (BatchStat)"
    assert kinds["dropout/rngs/key"] == "rng key (RngKey)"
    assert kinds["dropout/rngs/count"] == "rng count (RngCount)"
    key = next(row for row in nnx_model if row.path == "dropout/rngs/key")
    assert key.dtype == "key<fry>" and key.nbytes == 8


def test_optimizer_state_counters(rows):
    _, torch_optimizer = rows["PyTorch"]
    steps = [row for row in torch_optimizer if row.path.endswith("/step")]
    assert len(steps) == 6 and {row.dtype for row in steps} == {"float32"}, "one float32 step per parameter"
    _, linen_optimizer = rows["Linen"]
    assert [row.path for row in linen_optimizer if row.group == "optimizer step counts"] == [
        "step",
        "opt_state/0/count",
    ]
    _, nnx_optimizer = rows["NNX"]
    counters = {row.path: row.dtype for row in nnx_optimizer if row.group == "optimizer step counts"}
    assert counters == {"opt_state/0/count": "int32", "step": "uint32"}


def test_moments_have_the_parameters_shapes(rows):
    for name in FRAMEWORKS:
        model, optimizer = rows[name]
        parameter_shapes = sorted(row.shape for row in model if row.kind.startswith("parameter"))
        moment_shapes = sorted(row.shape for row in optimizer if row.kind.startswith("moment"))
        assert moment_shapes == sorted(parameter_shapes * 2), name


def test_check_rejects_a_mismatch(script, rows):
    counts = script.compare(rows)
    assert counts == TOTALS
    counts["NNX"]["trainable parameters"] = (162, 648)
    with pytest.raises(AssertionError):
        script.check(counts)


def test_side_by_side_covers_every_array_once(script, rows):
    names = [name for name, _ in script.TorchMLP().named_parameters()]
    table = script.side_by_side(script.MODEL_STATE, *(rows[name][0] for name in FRAMEWORKS))
    assert table.splitlines()[0] == "| | PyTorch | Flax Linen | Flax NNX |"
    assert "`dropout/rngs/key` RngKey () key&lt;fry>, 8 B" in table, "the key's dtype is escaped"
    script.side_by_side(script.optimizer_correspondences(names), *(rows[name][1] for name in FRAMEWORKS))
    incomplete = [line for line in script.MODEL_STATE if line[1] != "norm.num_batches_tracked"]
    with pytest.raises(AssertionError, match="column 1 does not list each array once"):
        script.side_by_side(incomplete, *(rows[name][0] for name in FRAMEWORKS))


def test_pytorch_counts_steps_per_parameter_because_it_skips_a_missing_grad():
    out = section(run_script("where_state_lives"), "Step counts when a parameter is not used")
    assert "PyTorch Adam steps: a 3, b 1; b afterwards [0.9, 0.9]" in out, "b took its first step only"
    assert "Optax count: 3; b afterwards [0.7812, 0.7812]" in out, "a zero gradient: b still moves"


def test_inject_hyperparams_puts_the_learning_rate_into_opt_state():
    out = section(run_script("where_state_lives"), "Hyperparameters")
    assert "PyTorch param_groups: 0.001" in out
    assert "NNX opt_state.hyperparams before: 0.01" in out
    assert "NNX opt_state.hyperparams after: 0.001" in out
    assert "plain adam hyperparams in opt_state: False" in out


def test_steps_are_taken_in_the_mode_chosen_outside_them(script):
    """The steps no longer switch modes themselves: a model left in eval mode stays there."""
    x, y = script.make_data()
    torch_model, torch_optimizer = script.torch_setup()
    torch_model.eval()
    script.torch_step(torch_model, torch_optimizer, x, y)
    assert not torch_model.training and torch_model.norm.num_batches_tracked.item() == 0
    nnx_model, nnx_optimizer = script.nnx_setup()
    nnx_model.eval()
    script.nnx_step(nnx_model, nnx_optimizer, x, y)
    assert nnx_model.norm.use_running_average and nnx_model.dropout.deterministic


def test_script_prints_the_coverage():
    out = section(run_script("where_state_lives"), "Side by side")
    assert "model state: 11 lines cover every array of each framework" in out
    assert "optimizer state: 20 lines cover every array of each framework" in out


# -- The rendered page -------------------------------------------------------------------------


def tab_sets(site):
    """Each framework tab-set as {sync id: panel}."""
    result = []
    for tab_set in site.soup(PAGE).select("div.sd-tab-set.framework-tabs"):
        labels = tab_set.select(":scope > label.sd-tab-label")
        panels = tab_set.select(":scope > div.sd-tab-content")
        result.append(dict(zip([label["data-sync-id"] for label in labels], panels, strict=True)))
    return result


def test_page_has_four_synced_tab_sets_of_three_frameworks(site):
    tab_set_divs = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    assert len(tab_set_divs) == 5  # the models, one step, the model's state, the optimizer's, hyperparameters
    for tab_set in tab_set_divs:
        labels = tab_set.select(":scope > label.sd-tab-label")
        assert [label.get_text(strip=True) for label in labels] == ["PyTorch", "Flax Linen", "Flax NNX"]
        assert [label["data-sync-id"] for label in labels] == ["pytorch", "linen", "nnx"]
        assert {label["data-sync-group"] for label in labels} == {"framework"}, "synced across the site"


def test_page_shows_pytorch_adam_empty_until_the_first_step(site):
    models, step, *_ = tab_sets(site)
    assert "state before the first step: {}" in models["pytorch"].get_text()
    assert "count: 0  sum of |mu|: 0.0" in models["linen"].get_text()
    assert "count: 0  sum of |mu|: 0.0" in models["nnx"].get_text()
    assert "optimizer state now has entries for parameters: [0, 1, 2, 3, 4, 5]" in step["pytorch"].get_text()
    assert "step: 1  count: 1" in step["linen"].get_text() and "step: 1  count: 1" in step["nnx"].get_text()


def test_page_tabs_summarize_each_frameworks_state(site):
    _, _, model_state, optimizer_state, _ = tab_sets(site)
    for sync, name in zip(["pytorch", "linen", "nnx"], FRAMEWORKS, strict=True):
        model, optimizer = model_state[sync].get_text(), optimizer_state[sync].get_text()
        for group, text in [("trainable parameters", model), ("optimizer moments", optimizer)]:
            numbers, nbytes = TOTALS[name][group]
            assert f"{group}: {numbers} / {nbytes} B" in text, (name, group)
    assert " 1 x batch counter (buffer)" in model_state["pytorch"].get_text()
    assert " 2 x batch stat (BatchStat)" in model_state["nnx"].get_text()
    assert " 1 x rng key (RngKey)" in model_state["nnx"].get_text()
    assert " 6 x step count" in optimizer_state["pytorch"].get_text()


def page_tables(site):
    """Each table of the page's outputs as {first cell: [the other cells]}, by row."""
    tables = []
    for table in site.soup(PAGE).select("div.cell_output table"):
        lines = [
            [td.get_text(" ", strip=True) for td in row.select("td")] for row in table.select("tbody tr")
        ]
        tables.append({first: rest for first, *rest in lines})
    return tables


def test_page_model_state_side_by_side(site, script):
    model_table, _, _ = page_tables(site)
    assert list(model_table) == [line[0] for line in script.MODEL_STATE]
    for what, *paths in script.MODEL_STATE:
        for path, shown in zip(paths, model_table[what], strict=True):
            assert shown.startswith(path) if path else shown == "—", (what, shown)
    assert model_table["parameter: dense1 weights"] == [
        "dense1.weight (16, 4) float32, 256 B",
        "params/dense1/kernel (4, 16) float32, 256 B",
        "dense1/kernel Param (4, 16) float32, 256 B",
    ]
    assert model_table["batch counter"] == ["norm.num_batches_tracked buffer () int64, 8 B", "—", "—"]
    assert model_table["rng: Dropout key"] == ["—", "—", "dropout/rngs/key RngKey () key<fry>, 8 B"]
    assert model_table["batch stat: running mean"][2] == "norm/mean BatchStat (16,) float32, 64 B"


def test_page_optimizer_state_side_by_side(site):
    _, optimizer_table, _ = page_tables(site)
    assert len(optimizer_table) == 20
    assert optimizer_table["dense1 weights: 1st moment"] == [
        "state/0/exp_avg (16, 4) float32, 256 B",
        "opt_state/0/mu/dense1/kernel (4, 16) float32, 256 B",
        "opt_state/0/mu/dense1/kernel OptVariable (4, 16) float32, 256 B",
    ]
    assert optimizer_table["dense2 bias: step"] == ["state/5/step () float32, 4 B", "—", "—"]
    assert optimizer_table["Adam step count"] == [
        "—",
        "opt_state/0/count () int32, 4 B",
        "opt_state/0/count OptArray () int32, 4 B",
    ]
    assert optimizer_table["training loop step"] == [
        "—",
        "step TrainState () int32, 4 B",
        "step OptState () uint32, 4 B",
    ]


def test_page_tables_use_the_themes_table_style(site):
    tables = site.soup(PAGE).select("div.cell_output table")
    assert len(tables) == 3  # the model's state, the optimizer's state, the totals
    for table in tables:
        assert "table" in table["class"], "a docutils table, styled by the theme in light and dark mode"
        assert table.find_parent("div", class_="pst-scrollable-table-container") is not None
        assert not table.find_parent("div", class_="sd-tab-set"), "full width, not in a narrow tab column"
    assert not site.soup(PAGE).select("div.cell_output [style]"), "no hard-coded colours"


def test_page_totals_table_and_checks(site):
    totals = site.soup(PAGE).select("div.cell_output table")[-1]
    header = [cell.get_text(strip=True) for cell in totals.select("thead th")]
    assert header[1:] == FRAMEWORKS
    for row in totals.select("tbody tr"):
        group, *cells = (cell.get_text(strip=True) for cell in row.select("td"))
        assert cells == [f"{n} numbers, {b} B" for n, b in (TOTALS[name][group] for name in FRAMEWORKS)]
    checks = site.output_with(PAGE, "trainable parameters agree")
    assert "trainable parameters agree: 163 numbers, 652 bytes in each framework" in checks
    assert "Adam moments are twice the parameters: 326 numbers, 1304 bytes in each" in checks


def test_page_shows_pytorch_keeps_dropouts_random_state_outside_the_model(site):
    text = site.output_with(PAGE, "torch.get_rng_state()")
    assert "a generator's state in the state_dict: False" in text
    assert "num_batches_tracked after one step: 1" in text


def test_page_shows_step_counts_per_parameter_and_the_zero_gradient(site):
    torch_out = site.output_with(PAGE, "step counts: a 3, b 1")
    assert "after step 2: a.grad is None: False, b.grad is None: True" in torch_out
    assert "b after the three steps: [0.9000000357627869, 0.9000000357627869]" in torch_out
    optax_out = site.output_with(PAGE, "gradient of b:")
    assert "after step 2: gradient of b: [0.0, 0.0]" in optax_out
    assert "count: 3" in optax_out
    assert "b after the three steps: [0.7812" in optax_out


def test_page_shows_hyperparameters_as_param_groups_and_injected_state(site):
    *_, hyperparameters = tab_sets(site)
    assert "learning rate: 0.01  betas: (0.9, 0.999)" in hyperparameters["pytorch"].get_text()
    assert "changed to: 0.001" in hyperparameters["pytorch"].get_text()
    assert "'learning_rate': 0.01" in hyperparameters["linen"].get_text()
    assert "changed to: 0.001" in hyperparameters["linen"].get_text()
    assert "OptArray 0.01" in hyperparameters["nnx"].get_text()
    assert "changed to: 0.001" in hyperparameters["nnx"].get_text()


def test_page_steps_do_not_switch_modes(site):
    step = tab_sets(site)[1]
    for sync, name in [("pytorch", "torch_step"), ("nnx", "nnx_step")]:
        code = step[sync].select_one("div.cell_input").get_text()
        definition = code.split(f"def {name}(")[1]
        body = definition.split("\n\n\n")[0]  # up to the first top-level statement after it
        assert ".train()" not in body, f"{name} switches the mode inside the step"
        assert ".train()  # the mode is set outside the step" in code


def test_page_exercise_solution(site):
    (cell,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert cell.find("details") is not None, "the solution is folded"
    text = site.output_with(PAGE, "counts as predicted")
    assert "counts as predicted: True" in text
    script = section(run_script("where_state_lives"), "Exercise: a second BatchNorm")
    assert text.strip().splitlines() == script.strip().splitlines(), "the page counts what the script counts"
