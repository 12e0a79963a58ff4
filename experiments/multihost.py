"""Training over several processes (hosts): every process runs this script.

    srun python experiments/multihost.py                   # Slurm: addresses from the environment
    mpirun -n 4 python experiments/multihost.py            # Open MPI, likewise
    python experiments/multihost.py                        # on every host of a Cloud TPU slice
    python experiments/multihost.py --coordinator host0:1234 --num-processes 2 --process-id 0
    python experiments/multihost.py --coordinator host0:1234 --num-processes 2 --process-id 1

jax.distributed.initialize() reads the coordinator's address, the number of processes and this
process's id from Slurm, Open MPI or Cloud TPU; elsewhere they come from the flags. On a CPU,
``--local-devices N`` splits each process into N devices (to try it all on one machine) and the
processes talk through gloo. Each process then holds only its own rows of the training data
(the digits set, split by process), as global arrays over ``jmlp.data_mesh()``, which spans the
devices of every process:

1. ``jmlp.fit`` data parallel: every mini-batch split over all devices; the epoch order is over
   the global data, so the result does not depend on the number of processes.
2. ``jmlp.fit_many``: an ensemble of ``--members`` networks split over the devices.
Process 0 prints the table and writes results.json (and the checkpoint of part 1).
"""

import argparse
import os
import sys
import time


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coordinator", help="HOST:PORT of process 0 (default: from the cluster)")
    parser.add_argument("--num-processes", type=int, help="processes in all")
    parser.add_argument("--process-id", type=int, help="this process's id, 0 .. P-1")
    parser.add_argument("--local-devices", type=int, help="CPU devices per process (simulated)")
    parser.add_argument("--members", type=int, default=16, help="ensemble size (default 16)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/multihost", help="output folder (process 0)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    return parser.parse_args(argv)


def start(args: argparse.Namespace) -> None:
    """jax.distributed.initialize, before any other use of jax (flags or the environment)."""
    if args.local_devices:  # must be set before jax is imported
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={args.local_devices}"
        )
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used by CPU devices only
    given = {"coordinator_address": args.coordinator, "num_processes": args.num_processes,
             "process_id": args.process_id}  # fmt: skip
    jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})


def main(argv=None) -> dict:
    args = arguments(argv)
    start(args)
    import jax
    import numpy as np
    import optax

    import jmlp
    from jmlp.parallel import batch_sharding

    sys.path.insert(0, os.path.dirname(__file__))
    from common import save_json, table

    jmlp.use_compilation_cache()
    process, count = jax.process_index(), jax.process_count()
    mesh = jmlp.data_mesh()
    data = jmlp.data.load("digits", seed=args.seed)
    rows = (len(data.x_train) // (count * mesh.size)) * count * mesh.size
    if args.quick:
        rows, args.epochs, args.members = count * mesh.size * 16, 2, mesh.size
    share = rows // count  # this process's rows only: it never holds the others'
    mine = slice(process * share, (process + 1) * share)
    x = jax.make_array_from_process_local_data(batch_sharding(mesh), data.x_train[mine])
    y = jax.make_array_from_process_local_data(batch_sharding(mesh), data.y_train[mine])
    net = jmlp.MLP((64, 64, 10), "relu", "softmax", "cross_entropy")
    kw = {"epochs": args.epochs, "batch_size": 8 * mesh.size, "key": jax.random.key(args.seed + 1),
          "evaluate": {"test": (data.x_test, data.y_test)}, "mesh": mesh}  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    results = {"processes": count, "devices": mesh.size, "rows": rows}

    start_time = time.perf_counter()
    params = jmlp.init_params(jax.random.key(args.seed), net.sizes)
    one = jmlp.fit(net, params, optax.adam(1e-3), x, y, checkpoint_path=f"{args.out}/fit.npz", **kw)
    results["fit"] = {"test_accuracy": one.history["test_accuracy"][-1],
                      "seconds": time.perf_counter() - start_time}  # fmt: skip

    start_time = time.perf_counter()
    keys = jax.random.split(jax.random.key(args.seed + 2), args.members)
    many = jmlp.fit_many(net, optax.adam(1e-3), x, y, params=jmlp.init_many(keys, net.sizes), **kw)
    accuracy = np.asarray(many.history["test_accuracy"][:, -1])
    results["fit_many"] = {"members": args.members, "test_accuracy_mean": float(accuracy.mean()),
                           "seconds": time.perf_counter() - start_time}  # fmt: skip
    if process == 0:
        print(f"{count} processes, {mesh.size} devices, {rows} training rows ({share} per process)")
        print(table(["run", "test accuracy", "seconds"], [
            ["fit, data parallel", results["fit"]["test_accuracy"], results["fit"]["seconds"]],
            [f"fit_many, {args.members} members", results["fit_many"]["test_accuracy_mean"],
             results["fit_many"]["seconds"]],
        ]))  # fmt: skip
        save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
