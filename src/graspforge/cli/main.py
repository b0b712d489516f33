"""The ``graspforge`` command line."""

from __future__ import annotations

import argparse
import sys

import torch

from .. import __version__
from .._io import write_error
from ..errors import GraspforgeError
from . import bench as bench_cmd
from . import dataset as dataset_cmd
from . import evaluate as evaluate_cmd
from . import generate as generate_cmd
from . import hands as hands_cmd
from . import viz as viz_cmd


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graspforge", description="Synthesise diverse, physically valid grasps for robot hands.")
    p.add_argument("--version", action="version", version=f"graspforge {__version__}")
    p.add_argument("--threads", dest="threads_global", type=int, default=None,
                   help="CPU threads for torch and the numba kernels (generate defaults to 1; see its config)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    generate_cmd.add_parser(sub)
    evaluate_cmd.add_parser(sub)
    hands_cmd.add_parser(sub)
    dataset_cmd.add_parser(sub)
    viz_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.threads_global is not None:
        if args.threads_global < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads_global)
    try:
        return int(args.func(args) or 0)
    except GraspforgeError as e:
        print(f"graspforge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("graspforge: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a folder that cannot be made or read: one line, not a traceback
        print(f"graspforge: error: {write_error(e.filename or '?', e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
