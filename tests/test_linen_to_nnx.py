"""The claims of docs/linen-to-nnx.md, checked in its script and in the rendered page."""

import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from conftest import floats_after, import_script, run_script, section
from flax import nnx

PAGE = "linen-to-nnx"
LINEN_PATHS = [
    "batch_stats/BatchNorm_0/mean",
    "batch_stats/BatchNorm_0/var",
    "params/BatchNorm_0/bias",
    "params/BatchNorm_0/scale",
    "params/Dense_0/bias",
    "params/Dense_0/kernel",
    "params/Dense_1/bias",
    "params/Dense_1/kernel",
]


@pytest.fixture(scope="module")
def script():
    return import_script("linen_to_nnx")


def out(title):
    return section(run_script("linen_to_nnx"), title)


# -- The script --------------------------------------------------------------------------------


def test_tonnx_drops_the_collection_from_the_path_and_makes_it_the_type():
    text = out("ToNNX")
    assert "Linen collections: ['batch_stats', 'params']" in text
    assert "variables before lazy_init: 0" in text
    for line in [
        "bridged BatchNorm_0/mean: BatchStat (16,)",
        "bridged BatchNorm_0/scale: Param (16,)",
        "bridged Dense_0/kernel: Param (4, 16)",
        "bridged Dense_1/kernel: Param (16, 3)",
        "bridged to_nnx__rngs/dropout/key: RngKey ()",
        "bridged to_nnx__rngs/params/count: RngCount ()",
    ]:
        assert line in text
    registry = [line for line in text.splitlines() if line.startswith("registry: ")]
    assert registry == [
        "registry: 'params' -> Param -> 'params'",
        "registry: 'batch_stats' -> BatchStat -> 'batch_stats'",
        "registry: 'cache' -> Cache -> 'cache'",
        "registry: 'intermediates' -> Intermediate -> 'intermediates'",
        "registry: 'perturbations' -> Perturbation -> 'perturbations'",
    ]
    assert "bridged state in Linen layout: {'batch_stats': ['BatchNorm_0'], 'params':" in text
    assert floats_after("ToNNX eval output vs Linen apply, max |diff|:", text) == [0.0]


def test_registry_has_five_names_at_import():
    """The page says Flax registers five names when imported: read the registry in a fresh interpreter."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from flax.nnx import variablelib; print(sorted(variablelib.VariableTypeCache))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "['batch_stats', 'cache', 'intermediates', 'params', 'perturbations']"


def test_tonnx_keeps_a_fork_of_the_rngs():
    text = out("ToNNX")
    assert "to_nnx__rngs is the Rngs given: False" in text
    assert "keys drawn from the Rngs given: {'params': 1, 'dropout': 1}" in text, (
        "fork() draws one key a stream"
    )


def test_registry_lookups_compare_exact_types():
    text = out("ToNNX")
    assert "variable_name_from_type(Param): 'params'" in text
    for name in ["SubParam", "Count", "RngKey"]:
        assert f"variable_name_from_type({name}): ValueError" in text


def test_tonnx_training_needs_mutable_and_replaces_the_variables():
    text = out("ToNNX")
    assert "train=True without mutable raises: ModifyScopeVariableError" in text
    assert "train call with mutable returns: jax.Array" in text
    assert "mutable=['batch_stats'] changes the running mean: True" in text
    assert "  the same Variable object: False" in text, "ToNNX stores new Variable objects"
    assert "  the state taken before has the new mean: False" in text
    assert "native BatchNorm: the same Variable object: True changed: True" in text, "NNX writes in place"
    assert "two train calls differ (new dropout keys): True" in text
    assert "stream counts: {'dropout': 3, 'params': 3} -> {'dropout': 5, 'params': 5}" in text, (
        "every call draws one key from every stream"
    )


def test_tonnx_trains_under_nnx_jit():
    text = out("ToNNX")
    losses = [float(v) for v in text.split("bridged loss under nnx.jit:")[1].split("\n")[0].split()]
    assert len(losses) == 5 and all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert "optimizer moments for: ['BatchNorm_0', 'Dense_0', 'Dense_1']" in text
    assert "running mean moved by the jitted steps: True" in text


def test_linen_checkpoint_loads_into_native_nnx_and_agrees_by_outputs():
    text = out("Linen checkpoint into native NNX")
    assert [
        line.split(": ")[1] for line in text.splitlines() if line.startswith("checkpoint:")
    ] == LINEN_PATHS
    assert "load params/Dense_0/kernel -> dense1/kernel (Param)" in text
    assert "load batch_stats/BatchNorm_0/var -> norm/var (BatchStat)" in text
    assert "load params/BatchNorm_0/scale -> norm/scale (Param)" in text
    assert text.count("load ") == 8
    assert floats_after("native NNX vs Linen, eval, max |diff|:", text) == [0.0]
    (params_only,) = floats_after("params only, batch_stats left at init, max |diff|:", text)
    assert params_only > 0.1, "the running averages matter in evaluation mode"
    assert (
        "written back: {'batch_stats': ['BatchNorm_0'], 'params': ['BatchNorm_0', 'Dense_0', 'Dense_1']}"
        in text
    )
    assert floats_after("Linen apply on the written-back variables vs NNX, max |diff|:", text) == [0.0]


def test_tolinen_keeps_collections_not_the_object_nor_its_rngs():
    text = out("ToLinen")
    assert "init with one key raises: KeyError \"No RngStream named 'dropout' found in Rngs.\"" in text
    assert "ToLinen collections: {'batch_stats': ['norm'], 'params': ['dense1', 'dense2', 'norm']}" in text
    assert "running mean from init, all zeros: True" in text, "init reads the variables before its call"
    assert "apply without rngs or mutable returns: jax.Array" in text
    assert "  twice, equal outputs: True" in text
    assert "  differs from apply with a dropout key: True" in text
    assert "  equal to MLP(nnx.Rngs(default=0)) in training mode: True" in text
    assert "apply with mutable returns updates for: ['batch_stats']" in text
    assert "  batch_stats changed: True" in text
    assert "objects built by init and 5 applies: 6" in text
    assert "nnx.view: True True; original: False False; same Variable objects: True" in text
    assert floats_after("ToLinen eval vs native NNX with the same variables, max |diff|:", text) == [0.0]


def test_unregistered_collections_and_types_are_registered_by_the_wrappers():
    text = out("Unregistered collections and types")
    assert "before: 'counter' -> ValueError; Count -> ValueError" in text
    assert "ToNNX: 'counter' -> counter a subclass of ['Variable']" in text
    assert "ToLinen collections: ['Count', 'params']" in text
    assert "after: 'counter' -> counter; Count -> 'Count'" in text


def test_tolinen_docstring_says_once_the_code_builds_at_every_call():
    """The page quotes the docstring against the count of objects built (6 for 1 init and 5 applies)."""
    assert "we only create it once during init time" in " ".join(nnx.bridge.ToLinen.__doc__.split())
    assert "objects built by init and 5 applies: 6" in out("ToLinen")


def test_tolinen_init_keeps_the_state_from_before_its_call(script):
    """A training-mode init computes BatchNorm's update and drops it; the next apply keeps it."""
    x, _ = script.make_data()
    wrapped = nnx.bridge.to_linen(script.MLP)
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = wrapped.init(keys, x)
    _, updates = wrapped.apply(variables, x, mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)})
    assert bool((variables["batch_stats"]["norm"]["mean"] == 0).all())
    assert not bool((updates["batch_stats"]["norm"]["mean"] == 0).all())


def test_migration_table_rows():
    text = out("Migration table")
    assert "collection `params` | `variables['params']` | `nnx.Param` (in this model)" in text
    assert "collection `batch_stats` | `variables['batch_stats']` | `nnx.BatchStat` (in this model)" in text
    assert "collection `cache` | `variables['cache']` | `nnx.Cache` (not in this model)" in text
    assert "collection `intermediates` | `variables['intermediates']` | `nnx.Intermediate`" in text
    assert "collection `perturbations` | `variables['perturbations']` | `nnx.Perturbation` (not in" in text
    assert "`MLP(rngs)` holds 8 variables (plus 2 `RngState`) when built" in text
    assert "in none of `batch_stats`, `params` | stored in the model: `nnx.RngCount`, `nnx.RngKey`" in text
    assert "returns `(jax.Array, dict)` | `model(x)` returns a `jax.Array`, writes in place" in text
    mode = (
        "training or evaluation | in this model, an argument `train` of `__call__` that the code passes to "
        "`deterministic`/`use_running_average` | attributes set by `.train()`/`.eval()`: "
    )
    assert mode + "`dropout/deterministic`, `norm/use_running_average`" in text


def test_exercise_checkpoint_in_a_tonnx_wrapper():
    text = out("Exercise: the checkpoint in a ToNNX wrapper")
    assert "load params/Dense_0/kernel -> Dense_0/kernel (Param)" in text
    assert "load batch_stats/BatchNorm_0/mean -> BatchNorm_0/mean (BatchStat)" in text
    assert floats_after("ToNNX with the checkpoint vs Linen, max |diff|:", text) == [0.0]


def test_loader_refuses_a_collection_of_the_wrong_type(script):
    x, y = script.make_data()
    trained = script.train_linen(x, y, num_steps=1)
    model = script.MLP(nnx.Rngs(params=0, dropout=1))
    wrong = {"batch_stats": {"Dense_0": trained["params"]["Dense_0"]}}  # params filed as batch_stats
    with pytest.raises(AssertionError):
        script.load_linen_variables(model, wrong)
    with pytest.raises(KeyError):
        script.load_linen_variables(model, trained, rename={"Dense_0": "dense1"})  # a name missing


def test_written_back_layout_is_what_tolinen_produces(script):
    x, _ = script.make_data()
    model = script.MLP(nnx.Rngs(params=0, dropout=1))
    mine = script.as_linen_variables(nnx.state(model, nnx.Not(nnx.RngState)))
    theirs = nnx.bridge.to_linen(script.MLP).init(
        {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x
    )
    assert jax.tree.structure(mine) == jax.tree.structure(theirs)
    assert jax.tree.map(jnp.shape, mine) == jax.tree.map(jnp.shape, theirs)


# -- The rendered page -------------------------------------------------------------------------


def page_text(site):
    """The page's text on one line, with the typographic apostrophes that MyST renders made plain."""
    return " ".join(site.soup(PAGE).get_text().replace("\u2019", "'").split())


def test_page_shows_both_layouts_side_by_side(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    assert len(tab_sets) == 2
    for tab_set in tab_sets:
        labels = [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")]
        assert labels == ["Flax Linen", "Flax NNX"]
        assert "side-by-side" in tab_set["class"], "two frameworks to read across"
    linen, native = (panel.get_text() for panel in tab_sets[0].select("div.sd-tab-content"))
    assert re.search(r"params/Dense_0/kernel\s+\(4, 16\)", linen)
    assert re.search(r"batch_stats/BatchNorm_0/mean\s+\(16,\)", linen)
    assert re.search(r"dense1/kernel\s+Param\s+\(4, 16\)", native)
    assert re.search(r"norm/mean\s+BatchStat\s+\(16,\)", native)
    assert re.search(r"dropout/rngs/key\s+RngKey", native)
    linen_eval, nnx_eval = (
        panel.select("div.cell_output")[-1].get_text() for panel in tab_sets[1].select("div.sd-tab-content")
    )
    assert linen_eval.strip() == nnx_eval.strip()


def test_page_tonnx_state_and_registry(site):
    state = site.output_with(PAGE, "to_nnx__rngs/dropout/count").strip()
    assert state.startswith("variables before lazy_init: 0\n")
    state = state.split("\n", 1)[1]
    assert re.search(r"Dense_0/kernel\s+Param\s+\(4, 16\)", state)
    assert re.search(r"BatchNorm_0/var\s+BatchStat\s+\(16,\)", state)
    starts = {line.split("/")[0] for line in state.split("\n") if line.strip()}
    assert starts == {"BatchNorm_0", "Dense_0", "Dense_1", "to_nnx__rngs"}, (
        "no collection in the bridged paths"
    )
    registry = site.output_with(PAGE, "-> nnx.Param").split()
    assert registry == [
        *"'params' -> nnx.Param -> 'params'".split(),
        *"'batch_stats' -> nnx.BatchStat -> 'batch_stats'".split(),
        *"'cache' -> nnx.Cache -> 'cache'".split(),
        *"'intermediates' -> nnx.Intermediate -> 'intermediates'".split(),
        *"'perturbations' -> nnx.Perturbation -> 'perturbations'".split(),
    ]
    assert "Flax registers five names when it is imported" in site.soup(PAGE).get_text()
    rngs = site.output_with(PAGE, "to_nnx__rngs is the Rngs given:")
    assert "to_nnx__rngs is the Rngs given: False" in rngs
    assert "keys drawn from the Rngs given: {'params': 1, 'dropout': 1}" in rngs
    exact = site.output_with(PAGE, "SubParam  -> not in the registry").split("\n")
    assert [line.split() for line in exact if line] == [
        ["Param", "->", "'params'"],
        ["SubParam", "->", "not", "in", "the", "registry"],
        ["Count", "->", "not", "in", "the", "registry"],
        ["RngKey", "->", "not", "in", "the", "registry"],
    ]
    (error,) = [
        c for c in site.soup(PAGE).select("div.cell.tag_raises-exception") if "SubParam" in c.get_text()
    ]
    assert "ValueError" in error.get_text()
    assert "Type <class '__main__.SubParam'> is not registered in the registry" in error.get_text()
    back = site.output_with(PAGE, "ToNNX vs Linen apply")
    assert floats_after("ToNNX vs Linen apply, max |diff|:", back) == [0.0]


def test_page_tonnx_training_calls(site):
    (cell,) = [
        c for c in site.soup(PAGE).select("div.cell.tag_raises-exception") if "ModifyScope" in c.get_text()
    ]
    assert 'collection "batch_stats" is immutable' in cell.get_text()
    calls = site.output_with(PAGE, "two training calls differ")
    assert "the call returns: jax.Array" in calls
    assert "running mean changed: True" in calls
    assert "the same Variable object: False" in calls
    assert "the state taken before has the new mean: False" in calls
    assert "native BatchNorm, the same Variable object: True  changed: True" in calls
    assert "two training calls differ: True" in calls
    assert "before: {'dropout': 3, 'params': 3}  after: {'dropout': 5, 'params': 5}" in calls
    training = site.output_with(PAGE, "Adam's moments for:")
    page_losses = [float(v) for v in training.split("loss:")[1].split("\n")[0].split()]
    script_losses = [
        float(v) for v in out("ToNNX").split("bridged loss under nnx.jit:")[1].split("\n")[0].split()
    ]
    assert page_losses == script_losses, "the same seeds and calls as the script"
    assert "Adam's moments for: ['BatchNorm_0', 'Dense_0', 'Dense_1']" in training
    assert "running mean moved by the steps: True" in training


def test_page_checkpoint_loads_and_agrees(site):
    paths = site.output_with(PAGE, "dict ['batch_stats', 'params']").split()
    assert paths[:8] == LINEN_PATHS
    mapping = site.output_with(PAGE, "-> dense1/kernel")
    assert re.search(r"params/Dense_0/kernel\s+-> dense1/kernel\s+Param", mapping)
    assert re.search(r"batch_stats/BatchNorm_0/mean\s+-> norm/mean\s+BatchStat", mapping)
    equal = site.output_with(PAGE, "native NNX vs Linen, max |diff|:")
    assert floats_after("native NNX vs Linen, max |diff|:", equal) == [0.0]
    assert floats_after("params only, max |diff|:", equal)[0] > 0.1
    back = site.output_with(PAGE, "written-back variables")
    assert "running mean moved since the checkpoint: True" in back
    assert floats_after("Linen on the written-back variables vs NNX, max |diff|:", back) == [0.0]


def test_page_tolinen(site):
    assert "ToLinen is a Linen module: True" in site.output_with(PAGE, "is a Linen module")
    view = site.output_with(PAGE, "the same Variable objects:").split("\n")
    assert [line.split() for line in view if line] == [
        ["view:", "True", "True"],
        ["original:", "False", "False"],
        ["the", "same", "Variable", "objects:", "True"],
    ]
    (cell,) = [
        c for c in site.soup(PAGE).select("div.cell.tag_raises-exception") if "KeyError" in c.get_text()
    ]
    assert "No RngStream named 'dropout' found in Rngs." in cell.get_text()
    text = site.output_with(PAGE, "collections: {'batch_stats': ['norm']")
    assert "'params': ['dense1', 'dense2', 'norm']" in text
    assert "running mean from init, all zeros: True" in text
    bare = site.output_with(PAGE, "apply returns only:")
    assert "apply returns only: jax.Array" in bare
    assert "two calls, equal outputs: True" in bare
    assert "equal to a call with a dropout key: False" in bare
    assert "equal to MLP(nnx.Rngs(default=0)) in training mode: True" in bare
    assert "running mean changed: True" in site.output_with(PAGE, "updates for: ['batch_stats']")
    built = site.output_with(PAGE, "objects built by 1 init and 5 applies:")
    assert floats_after("objects built by 1 init and 5 applies:", built) == [6.0]
    assert floats_after("ToLinen vs native NNX with the same variables, max |diff|:", built) == [0.0]


def test_page_unregistered_collections_and_types(site):
    text = site.output_with(PAGE, "ToLinen collections:").split("\n")
    assert [line.split() for line in text if line] == [
        ["before:", "'counter'", "->", "not", "registered", "Count", "->", "not", "registered"],
        ["ToNNX:", "'counter'", "->", "counter", "a", "subclass", "of", "['Variable']"],
        ["ToLinen", "collections:", "['Count',", "'params']"],
        ["after:", "'counter'", "->", "counter", "Count", "->", "'Count'"],
    ]


def test_page_corrected_wording(site):
    """Sentences an earlier review found too broad, in their corrected form."""
    text = page_text(site)
    assert "which the names alone do not give" in text
    assert "an nnx.Rngs made from the keys" in text
    assert "At init it builds the object and reads its variables out before calling it" in text
    assert (
        "without a dropout key the mask is fixed, without mutable the new running averages are dropped"
        in text
    )
    assert "as_linen_variables, using nnx.variable_name_from_type, writes an NNX state back" in text
    assert "mechanical for the types in the registry" in text
    for wrong in ["no library can guess", "made of the keys", "running mean changed in place"]:
        assert wrong not in text


def test_page_migration_table_is_rendered_from_the_objects(site):
    (table,) = [
        t for t in site.soup(PAGE).select("div.cell_output table") if "random streams" in t.get_text()
    ]
    rows = [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in table.select("tbody tr")]
    concepts = [row[0] for row in rows]
    assert concepts == [
        "creating the variables",
        "collection batch_stats",
        "collection params",
        "collection cache",
        "collection intermediates",
        "collection perturbations",
        "random streams",
        "updating state",
        "training or evaluation",
    ]
    by_concept = {row[0]: row[1:] for row in rows}
    assert by_concept["collection params"] == ["variables['params']", "nnx.Param (in this model)"]
    assert by_concept["collection batch_stats"][1] == "nnx.BatchStat (in this model)"
    assert by_concept["collection cache"][1] == "nnx.Cache (not in this model)"
    assert by_concept["collection intermediates"][1] == "nnx.Intermediate (not in this model)"
    assert by_concept["collection perturbations"][1] == "nnx.Perturbation (not in this model)"
    assert by_concept["training or evaluation"][0] == (
        "in this model, an argument train of __call__ that the code passes to "
        "deterministic / use_running_average"
    )
    assert by_concept["random streams"][1] == "stored in the model: nnx.RngCount , nnx.RngKey"
    assert by_concept["updating state"] == [
        "apply(..., mutable=[...]) returns (jax.Array, dict)",
        "model(x) returns a jax.Array , writes in place",
    ]
    assert by_concept["random streams"][0] == "a key per apply ( rngs= ), in none of batch_stats , params"
    assert by_concept["creating the variables"][0] == "init(key, x) returns a dict of batch_stats , params"
    assert "dropout/deterministic" in by_concept["training or evaluation"][1]
    assert "norm/use_running_average" in by_concept["training or evaluation"][1]
    assert (
        by_concept["creating the variables"][1] == "MLP(rngs) holds 8 variables (plus 2 RngState ) when built"
    )


def test_page_exercise(site):
    text = site.output_with(PAGE, "ToNNX with the checkpoint vs Linen")
    assert re.search(r"params/Dense_0/kernel\s+-> Dense_0/kernel\s+Param", text)
    assert floats_after("ToNNX with the checkpoint vs Linen, max |diff|:", text) == [0.0]
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "load_linen_variables(wrapper, restored, rename=same_names)" in solution.get_text()


def test_page_prints_no_memory_address_or_folder(site):
    """No address, and no folder of the build machine (the checkpoint's is temporary) outside tracebacks."""
    cells = site.soup(PAGE).select("div.cell:has(div.cell_output)")
    assert len(cells) > 20
    for cell in cells:
        output = cell.select_one("div.cell_output").get_text()
        assert not re.search(r"0x[0-9a-f]{6,}", output)
        if "tag_raises-exception" not in cell["class"]:
            assert "/tmp" not in output and "site-packages" not in output and "linen/" not in output
