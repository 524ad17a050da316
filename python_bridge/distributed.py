"""Data-parallel `lethe unlearn`, `lethe run` and `lethe eval` on torch.distributed (docs/distributed.md).

    torchrun --nproc-per-node 2 $(which lethe) unlearn --config run.json [--set K=V] [--out DIR]
    torchrun --nproc-per-node 2 -m python_bridge.distributed unlearn --config run.json      (the same)
    lethe unlearn --nproc 2 --config run.json                                  (one machine, no torchrun)
    torchrun --nproc-per-node 2 $(which lethe) run workflows/quickstart.json [lethe run's options]
    torchrun --nproc-per-node 2 $(which lethe) eval --model out/run/model.safetensors [lethe eval's options]

(The lethe program carries a Python entry that runs this module when Python starts it, as
torchrun does; under torchrun --no-python it hands itself over to this module.
`-m lethe.python_bridge.distributed` where Lethe is installed as a wheel.) Every rank joins the
process group that torchrun's environment describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
Gloo for CPU runs, Gloo and NCCL with CUDA, or --backend. Every rank then runs the same unlearning run
(or workflow, or evaluation) through the native core, which splits each batch over the ranks and
sums the gradients with c10d collectives; rank 0 writes the run folder and prints the progress and
the summary. A
collective waits at most --timeout seconds, so a rank that fails or is cancelled ends the others
with a message instead of a hang; the run then resumes from its checkpoint when started again.
"""
import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch
import torch.distributed as dist

from . import _lethe

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _parser():
    parser = argparse.ArgumentParser(prog="python -m python_bridge.distributed",
                                     description="Data-parallel lethe unlearn and sharded lethe eval under torchrun.")
    commands = parser.add_subparsers(dest="command", required=True)
    unlearn = commands.add_parser("unlearn", help="one unlearning run from a JSON config, split over the ranks")
    unlearn.add_argument("--config", default="", help="run config JSON (none: every default)")
    unlearn.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config key, e.g. --set trainer.steps=50")
    unlearn.add_argument("--out", default="", help="output folder (overrides the config's output)")
    workflow = commands.add_parser("run", help="a workflow headless (lethe run's options): every rank runs the graph, "
                                               "the unlearn and evaluate nodes split their work, rank 0 writes the folder")
    workflow.add_argument("workflow", nargs="?", default="", help="the workflow .json (UI or API format)")
    workflow.add_argument("--out", default="", help="run folder (default out/<workflow>-<timestamp>)")
    workflow.add_argument("--resume", default="", help="continue the cancelled, failed or killed run in this folder")
    workflow.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE_ID.INPUT=VALUE",
                          help="override an input (repeatable)")
    evaluate = commands.add_parser("eval", help="evaluate a model on the embedded bench, the sampling split over the "
                                               "ranks (lethe eval's options)")
    evaluate.add_argument("--model", required=True, help="the model to evaluate (.safetensors)")
    for option, text in (("--baseline", "the model before unlearning"), ("--reference", "the retrained model"),
                         ("--out", "report folder (default out/eval-<timestamp>)"), ("--descriptor", "copy descriptor"),
                         ("--classifier", "classifier"), ("--config", "evaluation settings JSON"),
                         ("--erased-concept", "the class a concept-erasure run erased"),
                         ("--precision", "auto, fp32, bf16 or fp16")):
        evaluate.add_argument(option, default="", help=text)
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed")
    evaluate.add_argument("--samples-per-caption", type=int, default=-1, help="generations per forget caption")
    evaluate.add_argument("--samples-per-class", type=int, default=-1, help="generations per class prompt")
    evaluate.add_argument("--no-attacks", action="store_true", help="skip the attacks")
    for command in (unlearn, workflow, evaluate):
        command.add_argument("--backend", default=None, help="torch.distributed backend (default: cpu:gloo,cuda:nccl "
                                                             "when CUDA is available, else gloo)")
        command.add_argument("--timeout", type=float, default=300.0,
                             help="seconds a collective may wait for the other ranks (default 300)")
        command.add_argument("--nproc", type=int, default=0,
                             help="start this many ranks on this machine (without torchrun's environment)")
    return parser


def _evaluation_request(args):
    """lethe eval's options as the native request (bench::EvalRequest's keys)."""
    return json.dumps({"model": args.model, "baseline": args.baseline, "reference": args.reference, "out": args.out,
                       "descriptor": args.descriptor, "classifier": args.classifier, "config": args.config,
                       "erased_concept": args.erased_concept, "precision": args.precision,
                       "no_attacks": args.no_attacks, "seed": args.seed,
                       "samples_per_caption": args.samples_per_caption, "samples_per_class": args.samples_per_class})


def _progress_printer(rank, cancelled=None):
    """Rank 0's progress: one line per 10 s and at the end (every rank still checks for cancel;
    `cancelled`, when given, a list of signal names: the first stops the run as a cancel at the
    next step, with that name as the reason)."""
    last = [0.0]

    def report(event):
        if cancelled:
            return cancelled[0]
        now = time.monotonic()
        done = event["step"] >= event["total"]
        if rank != 0 or (not done and now - last[0] < 10.0):
            return True
        last[0] = now
        values = " ".join(f"{name}={value:.4g}" for name, value in sorted(event["values"].items()) if name != "lr")
        print(f"{event['stage']} {event['step']}/{event['total']} {values} {event['seconds_per_step']:.2f} s/step",
              file=sys.stderr, flush=True)
        return True

    return report


def _threads_per_rank():
    """The cores this process may use shared among the ranks on this machine (LETHE_THREADS wins)."""
    if os.environ.get("LETHE_THREADS"):
        return 0  # init_threads reads it
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, _lethe.available_cores() // max(1, local))


def _start_local_ranks(count, argv):
    """`count` ranks of this module on this machine, with the environment torchrun would give
    them (loopback rendezvous on a free port); SIGINT and SIGTERM are passed on to every rank.
    Returns the first failing rank's exit status (0 when all succeed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    forwarded = [a for i, a in enumerate(argv) if a != "--nproc" and (i == 0 or argv[i - 1] != "--nproc")
                 and not a.startswith("--nproc=")]
    module = __spec__.name if __spec__ else "python_bridge.distributed"
    processes = []
    for rank in range(count):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(count),
                   LOCAL_WORLD_SIZE=str(count), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        processes.append(subprocess.Popen([sys.executable, "-m", module, *forwarded], env=env))

    def forward(signum, _frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [process.wait() for process in processes]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return next((code for code in codes if code != 0), 0)


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.nproc:
        if args.nproc < 1 or "RANK" in os.environ:
            print(f"lethe distributed: error: --nproc starts the ranks itself: expected a count >= 1 and no torchrun "
                  f"environment, got --nproc {args.nproc}{' under RANK=' + os.environ['RANK'] if 'RANK' in os.environ else ''}",
                  file=sys.stderr)
            return 2
        return _start_local_ranks(args.nproc, argv)
    missing = [name for name in _TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        print(f"lethe distributed: error: the torchrun environment is missing {', '.join(missing)}; expected to be "
              f"started by torchrun (torchrun --nproc-per-node 2 -m python_bridge.distributed unlearn --config run.json) "
              f"or to be given --nproc N", file=sys.stderr)
        return 2
    _lethe.init_threads(_threads_per_rank())
    # With CUDA, the core's small CPU messages (the run folder, barriers) go over Gloo, tensors on
    # the GPU over NCCL.
    backend = args.backend or ("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    timeout = datetime.timedelta(seconds=args.timeout)
    dist.init_process_group(backend, timeout=timeout)
    rank, size = dist.get_rank(), dist.get_world_size()
    # A workflow's nodes end a cancel as one (run.json says "cancelled"; --resume continues it):
    # SIGINT asks the run to stop at its next step instead of raising in the middle of a node.
    # torchrun passes a Ctrl-C on as SIGINT and then SIGTERM: both cancel (a checkpoint keeps the
    # completed steps) before torchrun's SIGKILL 30 s later.
    cancelled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        if args.command == "run":
            signal.signal(signum, lambda signum, _frame: cancelled.append(signal.Signals(signum).name))
        else:
            signal.signal(signum, signal.default_int_handler)
    progress = _progress_printer(rank, cancelled)
    try:
        if args.command == "run":
            record, folder, lines = _lethe.run_workflow(args.workflow, args.out, args.resume, args.overrides,
                                                        group=dist.group.WORLD, timeout_seconds=args.timeout,
                                                        progress=progress)
        elif args.command == "eval":
            report, folder, lines = _lethe.run_evaluation(_evaluation_request(args), group=dist.group.WORLD,
                                                          timeout_seconds=args.timeout, progress=progress)
        else:
            summary, directory = _lethe.run_unlearning(args.config, args.overrides, args.out, group=dist.group.WORLD,
                                                       timeout_seconds=args.timeout, progress=progress)
    except _lethe.Cancelled as cancel:
        print(f"lethe: cancelled (rank {rank} of {size}): {cancel}", file=sys.stderr)
        return 130
    except _lethe.LetheError as error:
        print(f"lethe: error: {error}", file=sys.stderr)
        return 1
    finally:
        dist.destroy_process_group()
    if rank == 0 and args.command == "run":
        print(lines, end="")
    elif rank == 0 and args.command == "eval":
        print(f"report: {os.path.join(folder, 'report.json')}\npicture: {os.path.join(folder, 'report.png')}")
        print(lines, end="")
    elif rank == 0:
        print(json.dumps(json.loads(summary), indent=2))
        print(f"run folder: {directory}")
    return 0


def main(argv=None):
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Wherever the Ctrl-C lands: in the run, or while a rank already reports an error (a peer
        # that stopped on the same Ctrl-C), the rank ends as cancelled, not with a traceback.
        rank = f" (rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']})" if "RANK" in os.environ else ""
        print(f"lethe: cancelled{rank}: the run folder's checkpoint keeps the completed steps; the same command "
              f"resumes it", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
