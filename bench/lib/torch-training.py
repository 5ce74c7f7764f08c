"""The PyTorch peer of bench/training.ts: the daemon's MLP classifier, batch
and optimizer (cross-entropy, AdamW decaying matrices only, global gradient
clipping at 1) in PyTorch, run by Debian's python3-torch.

  one: samples/s of a plain training loop in this process, from its median
       step.
  ddp: one rank of DistributedDataParallel over gloo on 127.0.0.1; each rank
       takes its half of every global batch. Rank 0 prints the median step
       with the all-reduce and without it (model.no_sync()), alternated, so
       that the exchange's share is the time the step spends beyond its own
       compute, as the daemon reports it.

Prints one JSON line; arguments are JSON in argv[1].
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)

widths = [args["inputs"], *args["hidden"], args["classes"]]
layers = []
for i in range(len(widths) - 1):
    layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
    if i < len(widths) - 2:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)

ddp = args["mode"] == "ddp"
if ddp:
    import torch.distributed as dist
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args["port"])
    dist.init_process_group("gloo", rank=args["rank"], world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(model)

params = list(model.parameters())
optimizer = torch.optim.AdamW([
    {"params": [p for p in params if p.dim() > 1], "weight_decay": 0.01},
    {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
], lr=1e-3)
batch = args["batch"] // 2 if ddp else args["batch"]
features = torch.rand(batch, args["inputs"])
labels = torch.arange(batch) % args["classes"]


def step():
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(features), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()


def timed(sync):
    if ddp:
        dist.barrier()
    t0 = time.perf_counter()
    if sync:
        step()
    else:
        with model.no_sync():
            step()
    return time.perf_counter() - t0


def median(values):
    return sorted(values)[len(values) // 2]


steps = args["steps"]
for _ in range(3):
    step()
if ddp:
    # Steps with and without the all-reduce alternate, so that a neighbour's load weighs on both alike.
    pairs = [(timed(True), timed(False)) for _ in range(steps)]
    with_sync, without = median([p[0] for p in pairs]), median([p[1] for p in pairs])
    if args["rank"] == 0:
        print(json.dumps({"step_ms": with_sync * 1000, "compute_ms": without * 1000, "samples_per_second": args["batch"] / with_sync}))
    dist.destroy_process_group()
else:
    times = [timed(True) for _ in range(steps)]
    print(json.dumps({"samples_per_second": batch / median(times)}))
