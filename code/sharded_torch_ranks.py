"""The program each PyTorch rank runs for docs/sharded-state.md and docs/sharded-checkpoints.md.

PyTorch spreads training over devices with one process per rank: torchrun starts them, and each runs this
file with the gloo backend on the CPU. Both pages write this same file and run one mode of it each:

- ``train``, on 2 ranks (sharded-state): train with DDP and with FSDP2, compare the result with the same
  model trained in one process, report where each part of the state lives, and try SyncBatchNorm on a CPU
  tensor.
- ``save FOLDER``, on 2 ranks (sharded-checkpoints): train the FSDP2 model 3 steps and write a Distributed
  Checkpoint into FOLDER.
- ``load FOLDER``, on 4 ranks (sharded-checkpoints): read it into a model sharded four ways, train 3 more
  steps, and compare with the same model trained 6 steps in one process.

Every line it prints reads ``section: text`` and never names the folder; the pages show a section's lines
rank by rank. Run by hand, it runs the three modes with torchrun, the checkpoint in a temporary folder.
"""

import os
import subprocess
import sys
import tempfile
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel as DDP

IN_FEATURES, HIDDEN, OUT_FEATURES, BATCH_SIZE = 16, 32, 8, 32
LEARNING_RATE, NUM_STEPS = 0.01, 5
SAVE_AT, TOTAL_STEPS = 3, 6  # the checkpoint is written after step 3 and the training resumed to step 6

# A collective that waits longer than this fails its rank with an error instead of hanging.
COLLECTIVE_TIMEOUT = timedelta(seconds=60)


def say(section, text):
    """One line of this rank's output, tagged with the section of the page it belongs to."""
    print(f"{section}: {text}", flush=True)


def make_model(seed, batchnorm=False):
    """Linear 16 -> 32 without bias, (BatchNorm,) ReLU, Linear 32 -> 8: the model of the pages, seeded."""
    torch.manual_seed(seed)
    norm = [nn.BatchNorm1d(HIDDEN)] if batchnorm else []
    first = nn.Linear(IN_FEATURES, HIDDEN, bias=False)
    return nn.Sequential(first, *norm, nn.ReLU(), nn.Linear(HIDDEN, OUT_FEATURES))


def batch(step):
    """The global batch of training step `step`, the same on every rank and in every run."""
    rng = np.random.default_rng([1, step])
    x = rng.standard_normal((BATCH_SIZE, IN_FEATURES), dtype=np.float32)
    y = np.tanh(x[:, :OUT_FEATURES] * x[:, OUT_FEATURES:])
    return torch.from_numpy(x), torch.from_numpy(y)


def my_rows(tensor, rank, world_size):
    """This rank's contiguous block of rows of the global batch."""
    rows = tensor.shape[0] // world_size
    return tensor[rank * rows : (rank + 1) * rows]


def train(model, optimizer, steps, rank=0, world_size=1):
    """Mean-squared-error steps on this rank's rows of each global batch; the last loss."""
    for step in steps:
        x, y = batch(step)
        loss = nn.functional.mse_loss(model(my_rows(x, rank, world_size)), my_rows(y, rank, world_size))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def one_process(steps, batchnorm=False):
    """The reference: the same model trained in this process alone, on the whole batch of every step."""
    model = make_model(0, batchnorm)
    train(model, torch.optim.Adam(model.parameters(), lr=LEARNING_RATE), steps)
    return model


def full(tensor):
    """A parameter as one ordinary tensor: an FSDP2 DTensor is gathered from all ranks first."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def max_difference(model, reference):
    pairs = zip(model.parameters(), reference.parameters(), strict=True)
    return max((full(p).detach() - q.detach()).abs().max().item() for p, q in pairs)


def local_bytes(tensors):
    """Bytes this rank holds for these tensors: an FSDP2 DTensor counts its local shard only."""
    local = [t.to_local() if isinstance(t, DTensor) else t for t in tensors]
    return sum(t.numel() * t.element_size() for t in local)


def shard_model(model):
    """FSDP2: each Linear (and BatchNorm) is a unit of its own, then the root takes what is left."""
    for layer in model:
        if isinstance(layer, (nn.Linear, nn.BatchNorm1d)):
            fully_shard(layer)
    return fully_shard(model)


# -- DDP, BatchNorm under DDP, FSDP2, and the bytes of each -----------------------------------------


def describe_adam_state(name, optimizer, weight):
    """What Adam keeps for the first layer's weight on this rank: type, placement, local and global shape."""
    for key, value in optimizer.state[weight].items():
        where = ""
        if isinstance(value, DTensor):
            where = f"{value.placements} local {tuple(value.to_local().shape)} of "
        say("optimizer", f"{name:5} 0.weight {key:10} {type(value).__name__:7} {where}{tuple(value.shape)}")


def ddp(rank, world_size):
    model = DDP(make_model(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    for step in range(NUM_STEPS):
        loss = train(model, optimizer, [step], rank, world_size)
        mine = torch.cat([p.detach().flatten() for p in model.parameters()])
        everyone = [torch.empty_like(mine) for _ in range(world_size)]
        dist.all_gather(everyone, mine)
        same = all(torch.equal(mine, other) for other in everyone)
        rows = BATCH_SIZE // world_size
        say(
            "ddp",
            f"step {step}: loss on my {rows} rows {loss:.4f}, parameters identical on all ranks: {same}",
        )
    difference = max_difference(model.module, one_process(range(NUM_STEPS)))
    say("ddp", f"max |DDP - one process| after {NUM_STEPS} steps: {difference:.1e}")
    describe_adam_state("DDP", optimizer, model.module[0].weight)


def batchnorm_under_ddp(rank, world_size):
    model = DDP(make_model(0, batchnorm=True))
    seen = {}
    model.module[1].register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0].detach()))
    x, _ = batch(0)
    model(my_rows(x, rank, world_size))
    mine = seen["x"].mean(0)
    total = seen["x"].sum(0)
    dist.all_reduce(total)  # the statistic SyncBatchNorm would compute: over every rank's rows
    reference = make_model(0, batchnorm=True)
    reference[1].register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0].detach()))
    reference(x)
    np.set_printoptions(precision=3, floatmode="fixed", suppress=True)
    say("batchnorm", f"features 0-3, mean over my {BATCH_SIZE // world_size} rows:  {mine[:4].numpy()}")
    say("batchnorm", f"mean over all ranks' rows (all_reduce): {(total / BATCH_SIZE)[:4].numpy()}")
    say("batchnorm", f"mean in one process, whole batch:       {seen['x'].mean(0)[:4].numpy()}")
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    train(model, optimizer, range(NUM_STEPS), rank, world_size)
    difference = max_difference(model.module, one_process(range(NUM_STEPS), batchnorm=True))
    say("batchnorm", f"max |DDP with BatchNorm - one process| after {NUM_STEPS} steps: {difference:.1e}")


def sync_batchnorm_on_cpu(world_size):
    """SyncBatchNorm in training mode (a new module's mode), in this process group, on a CPU tensor."""
    x, _ = batch(0)
    try:
        nn.SyncBatchNorm(IN_FEATURES)(x)
        outcome = "no error"
    except ValueError as error:
        outcome = f"{type(error).__name__}: {error}"
    say("syncbn", f"SyncBatchNorm, training, CPU tensor, {world_size} ranks: {outcome}")


def fsdp(rank, world_size):
    model = shard_model(make_model(0))
    for name, p in model.named_parameters():
        local, whole = tuple(p.to_local().shape), tuple(p.shape)
        say("fsdp", f"{name:8} {type(p).__name__} {p.placements} local {local} of global {whole}")
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    train(model, optimizer, range(NUM_STEPS), rank, world_size)
    difference = max_difference(model, one_process(range(NUM_STEPS)))
    say("fsdp_proof", f"max |FSDP2 - one process| after {NUM_STEPS} steps: {difference:.1e}")
    describe_adam_state("FSDP2", optimizer, model[0].weight)
    sharded = get_model_state_dict(model)
    local = [f"{type(v).__name__}{tuple(v.to_local().shape)}" for v in sharded.values()]
    say("state_dict", f"sharded: {len(sharded)} tensors, local " + ", ".join(local))
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    whole = get_model_state_dict(model, options=options)
    say(
        "state_dict",
        f"full:    {len(whole)} tensors "
        + ", ".join(f"{type(v).__name__}{tuple(v.shape)}" for v in whole.values()),
    )


def placement_bytes(rank, world_size):
    """Parameters, gradients, Adam's state and BatchNorm's buffers: bytes on this rank, DDP then FSDP2."""
    for name, wrap in [("DDP", DDP), ("FSDP2", shard_model)]:
        model = wrap(make_model(0, batchnorm=True))
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        train(model, optimizer, [0], rank, world_size)
        parameters = list(model.parameters())
        held = {
            "parameters": local_bytes(parameters),
            "gradients": local_bytes([p.grad for p in parameters]),
            "optimizer": local_bytes([t for state in optimizer.state.values() for t in state.values()]),
            "batch_stats": local_bytes(list(model.buffers())),
        }
        say("bytes", f"{name} " + " ".join(f"{key}={value}" for key, value in held.items()))


# -- A Distributed Checkpoint written on 2 ranks, read on 4 ------------------------------------------


def save(rank, world_size, folder):
    model = shard_model(make_model(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    train(model, optimizer, range(SAVE_AT), rank, world_size)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)
    weight = model_state["0.weight"]
    first, last = rank * weight.to_local().shape[0], (rank + 1) * weight.to_local().shape[0] - 1
    say("save", f"after {SAVE_AT} steps on {world_size} ranks, my slice of 0.weight: rows {first}-{last}")
    say("save", f"0.weight local {tuple(weight.to_local().shape)} of {tuple(weight.shape)}")
    if rank == 0:  # the checkpoint's metadata, as a reader of the folder sees it
        stored = dcp.FileSystemReader(folder).read_metadata().state_dict_metadata["model.0.weight"]
        say("save", f"stored model.0.weight: {tuple(stored.size)}")


def load(rank, world_size, folder):
    model = shard_model(make_model(seed=1))  # different initial values: only a real load can match
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.load({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state)
    weight = model.get_parameter("0.weight")
    adam_step = optimizer.state[weight]["step"].item()
    shapes = f"local {tuple(weight.to_local().shape)} of {tuple(weight.shape)}"
    say("load", f"0.weight {shapes}, Adam step {adam_step:.0f}")
    train(model, optimizer, range(SAVE_AT, TOTAL_STEPS), rank, world_size)
    difference = max_difference(model, one_process(range(TOTAL_STEPS)))
    say("load", f"max |saved on 2, resumed on {world_size} - one process, uninterrupted|: {difference:.1e}")


def sharded_training(rank, world_size):
    """The sharded-state page's part: DDP, BatchNorm under DDP, SyncBatchNorm, FSDP2, the bytes of each."""
    ddp(rank, world_size)
    batchnorm_under_ddp(rank, world_size)
    sync_batchnorm_on_cpu(world_size)
    fsdp(rank, world_size)
    placement_bytes(rank, world_size)


def main():
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    mode, *folder = sys.argv[1:]
    try:
        {"train": sharded_training, "save": save, "load": load}[mode](rank, world_size, *folder)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    if "RANK" in os.environ:  # started by torchrun: this process is one of the ranks
        main()
        # With torch 2.13, the gloo threads of these ranks outlive destroy_process_group, and one that frees
        # a collective's tensors while Python shuts down aborts the rank (the crash of pytorch/pytorch#179291;
        # seen here, now and then). So the rank leaves without Python's shutdown, its output written.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    else:  # started by hand: the three modes, with torchrun printing each line with its rank
        env = dict(os.environ, OMP_NUM_THREADS="1")
        env["PYTHONWARNINGS"] = "error::DeprecationWarning,error::FutureWarning"  # as the pages run it
        with tempfile.TemporaryDirectory() as logs, tempfile.TemporaryDirectory() as folder:
            torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--log-dir={logs}"]
            for nproc, mode in [(2, ["train"]), (2, ["save", folder]), (4, ["load", folder])]:
                command = [*torchrun, f"--nproc-per-node={nproc}", "--tee=3", __file__, *mode]
                subprocess.run(command, check=True, timeout=300, env=env)
