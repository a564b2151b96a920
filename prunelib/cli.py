"""Command line: ``python -m prunelib {run,prune,params}``.

``run`` executes the staged notebooks with papermill (the main job); ``prune`` calls the same stage functions
without notebooks, with the reference script's options; ``sweep`` runs a grid of runs and compares them;
``finetune`` trains a pruned checkpoint further with its structure kept; ``params`` lists every parameter with its
default. Expected user errors print one
line and exit 2 (``--debug`` shows the traceback); Ctrl-C stops with a line saying how to resume.
"""

from __future__ import annotations

import argparse
import errno
import sys

from prunelib.errors import UserError

SEED_OPTIONS = [  # the reference script's options -> parameter keys
    ("--model", "model", str, "trained .pt to prune (default: the embedded baseline)"),
    ("--data", "data", str, "data YAML (default: the embedded synthetic set)"),
    ("--cfg", "cfg", str, "Ultralytics training-settings YAML for fine-tuning"),
    ("--iterative-steps", "iterative_steps", int, "prune -> fine-tune steps (default 10)"),
    ("--target-prune-rate", "target_prune_rate", float, "channel ratio to remove in all (default 0.5)"),
    ("--max-map-drop", "max_map_drop", float, "early stop when mAP50-95 drops more than this (default 0.2)"),
    ("--run-name", "run_name", str, "folder under runs/ for this run"),
]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished steps are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as e:
        if args.debug or e.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT):
            raise
        print(f"error: cannot write {e.filename or 'the run folder'!s}: {e.strerror}; finished steps are kept",
              file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prunelib",
        description="YOLO11 Pruning Kit: the staged pipeline (run), the pruning engine alone (prune), the parameters.",
    )
    sub = parser.add_subparsers(dest="command")

    def common(p):
        p.add_argument("--params", action="append", default=[], metavar="FILE",
                       help="parameter YAML (repeatable; later files override earlier ones)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one parameter")
        p.add_argument("--new-run", action="store_true", help="if the run exists, start a new one beside it")
        p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")

    run = sub.add_parser("run", help="run the staged notebooks headless (papermill) into runs/<run_name>/")
    common(run)
    run.add_argument("--stages", help="comma-separated stages to run, e.g. 30,40 (default: all)")
    run.set_defaults(func=cmd_run)

    prune = sub.add_parser("prune", help="run the same stages without notebooks (reference-script options)")
    common(prune)
    for flag, key, typ, text in SEED_OPTIONS:
        prune.add_argument(flag, dest=key, type=str, default=None, help=text, metavar=typ.__name__.upper())
    prune.set_defaults(func=cmd_prune)

    sweep = sub.add_parser("sweep", help="a grid of runs (every combination), resumable, compared in one notebook")
    sweep.add_argument("--sweep", metavar="FILE", help="sweep YAML (params/sweeps/*.yaml): params, set, grid")
    sweep.add_argument("--params", action="append", default=[], metavar="FILE", help="base parameter YAML (repeatable)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="values of one key to combine with the others (repeatable)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    sweep.add_argument("--name", help="folder under the runs folder (default: the sweep file's name)")
    sweep.add_argument("--jobs", type=int, default=1, help="runs at once, CPU threads divided between them")
    sweep.add_argument("--devices", help="GPUs to spread runs over, one run per device at a time, e.g. 0,1")
    sweep.add_argument("--list", action="store_true", help="print one command per run (for a scheduler) and stop")
    sweep.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    sweep.set_defaults(func=cmd_sweep)

    _finetune_parser(sub)

    baseline = sub.add_parser("baseline", help="train the embedded baseline again and ship it in baselines/")
    baseline.add_argument("--params", action="append", default=[], metavar="FILE", help="parameter YAML (repeatable)")
    baseline.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one parameter")
    baseline.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    baseline.set_defaults(func=cmd_baseline)

    refresh = sub.add_parser("refresh-notebooks", help="re-execute the source notebooks and save their outputs")
    refresh.add_argument("--debug", action="store_true")
    refresh.set_defaults(func=cmd_refresh)

    params = sub.add_parser("params", help="list every parameter with its default and description")
    params.add_argument("--debug", action="store_true")
    params.set_defaults(func=cmd_params)
    return parser


def _finetune_parser(sub) -> None:
    ft = sub.add_parser("finetune", help="train a pruned checkpoint further, its structure kept (not YOLO().train)")
    ft.add_argument("--model", required=True, help="pruned checkpoint, e.g. runs/<run>/final.pt")
    ft.add_argument("--data", help="data YAML (default: the embedded synthetic set)")
    ft.add_argument("--cfg", help="Ultralytics training-settings YAML (e.g. lr0, mosaic, patience)")
    ft.add_argument("--epochs", type=int, help="epochs (default: finetune_epochs)")
    ft.add_argument("--teacher",
                    help="checkpoint to distil from, e.g. the unpruned model (distill_weight 1 unless set)")
    ft.add_argument("--name", help="folder under <runs>/finetune/ (default: the model file's name; never overwritten)")
    ft.add_argument("--params", action="append", default=[], metavar="FILE", help="parameter YAML (repeatable)")
    ft.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one parameter")
    ft.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    ft.set_defaults(func=cmd_finetune)


def overrides_from(args) -> dict:
    from prunelib.runs import parameters

    out = parameters.parse_set(args.set)
    for _flag, key, typ, _ in SEED_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            try:
                out[key] = typ(value)
            except ValueError:
                raise UserError(f"{key}: expected {typ.__name__}, got {value!r}") from None
    return out


def cmd_run(args) -> int:
    from prunelib.runs.pipeline import run_pipeline

    run = run_pipeline(args.params, overrides_from(args), args.stages, args.new_run)
    print(f"done: {run.rel(run.report_md)}")
    return 0


def cmd_prune(args) -> int:
    from prunelib.runs import open_run, stages

    run = open_run(args.params, overrides_from(args), new_run=args.new_run)
    print(f"Run {run.name!r} in {run.rel(run.dir)}")
    stages.run_stages(run)
    print(f"done: {run.rel(run.final)}, {run.rel(run.report_md)}")
    return 0


def cmd_sweep(args) -> int:
    from prunelib.paths import relative
    from prunelib.runs import sweep

    if args.jobs < 1:
        raise UserError(f"--jobs: {args.jobs} is not allowed; expected 1 or more")
    plan = sweep.load(args.sweep, args.params, args.grid, args.set, args.name)
    if args.list:
        print(sweep.listing(plan), end="")
        return 0
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else []
    status = sweep.run_sweep(plan, jobs=args.jobs, devices=devices)
    failed = sorted(name for name, record in status.items() if record["status"] != "done")
    print(f"done: {len(status) - len(failed)} of {len(status)} runs finished"
          + (f"; failed: {', '.join(failed)} (see sweep.json)" if failed else "")
          + f"; {relative(plan.folder.summary_md)}")
    return 1 if failed else 0


def cmd_finetune(args) -> int:
    from prunelib.paths import relative, resolve
    from prunelib.runs import parameters
    from prunelib.runs.folder import check_inputs, next_free, runs_root
    from prunelib.surgery.checkpoints import load_model
    from prunelib.training.finetuning import continue_training

    given = {"model": args.model, "data": args.data, "cfg": args.cfg, "finetune_epochs": args.epochs}
    overrides = parameters.parse_set(args.set) | {k: v for k, v in given.items() if v is not None}
    if args.teacher and not overrides.get("distill_weight"):
        overrides["distill_weight"] = 1.0
    params = parameters.load([resolve(f) for f in args.params], overrides)
    if params["finetune_epochs"] < 1:
        raise UserError(f"--epochs: {params['finetune_epochs']} is not allowed; expected 1 or more")
    check_inputs(params)
    if args.teacher:
        load_model(resolve(args.teacher), "--teacher")
    out = next_free(runs_root(params) / "finetune" / (args.name or resolve(args.model).stem))
    best, last = continue_training(params, out, teacher=resolve(args.teacher) if args.teacher else None)
    print(f"done: {relative(best)}, {relative(last)} (load with YOLO(path); no prunelib needed)")
    return 0


def cmd_baseline(args) -> int:
    from prunelib.paths import resolve
    from prunelib.runs import parameters
    from prunelib.training import embedded

    params = parameters.load([resolve(f) for f in args.params], parameters.parse_set(args.set))
    if params["model"]:
        raise UserError(f"model: {params['model']!r} is set; the embedded baseline is only for runs without one")
    embedded.ship(params)
    return 0


def cmd_params(args) -> int:
    from prunelib.runs import parameters

    print(parameters.describe())
    return 0


def cmd_refresh(args) -> int:
    from prunelib.runs.pipeline import refresh_sources

    refresh_sources()
    return 0
