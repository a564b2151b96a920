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
import os
import sys

from prunelib import console
from prunelib.core import parameters
from prunelib.core.folder import next_free, runs_root
from prunelib.core.settings import Settings, image_folder
from prunelib.errors import UserError
from prunelib.paths import relative, resolve

# Options spelled as the reference script (yolo11_pruning.py) spells them -> the parameter each sets; their types,
# help texts and defaults are the parameter table's.
REFERENCE_OPTIONS = {
    "--model": "model",
    "--data": "data",
    "--cfg": "cfg",
    "--iterative-steps": "iterative_steps",
    "--target-prune-rate": "target_prune_rate",
    "--max-map-drop": "max_map_drop",
    "--run-name": "run_name",
}
# The commands import what they run when they run: torch, Ultralytics and papermill load in seconds, which --help
# and 'params' need not wait for.


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.verbose:  # the stages' kernels inherit it
        os.environ[console.VERBOSE_ENV] = "1"
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
        print(
            f"error: cannot write {e.filename or 'the run folder'!s}: {e.strerror}; finished steps are kept",
            file=sys.stderr,
        )
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prunelib",
        description="YOLO11 Pruning Kit: the staged pipeline (run), the pruning engine alone (prune), the parameters.",
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the staged notebooks headless (papermill) into runs/<run_name>/")
    _parameter_options(run, new_run=True)
    run.add_argument("--stages", help="comma-separated stages to run, e.g. 30,40 (default: all)")
    run.set_defaults(func=cmd_run)

    prune = sub.add_parser("prune", help="run the same stages without notebooks (reference-script options)")
    _parameter_options(prune, new_run=True)
    for flag, key in REFERENCE_OPTIONS.items():
        _table_option(prune, flag, key)
    prune.set_defaults(func=cmd_prune)

    sweep = sub.add_parser("sweep", help="a grid of runs (every combination), resumable, compared in one notebook")
    sweep.add_argument("--sweep", metavar="FILE", help="sweep YAML (params/sweeps/*.yaml): params, set, grid")
    _parameter_options(sweep, what="every run of the sweep")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of one key to combine with the others (repeatable)",
    )
    sweep.add_argument("--name", help="folder under the runs folder (default: the sweep file's name)")
    sweep.add_argument("--jobs", type=int, default=1, help="runs at once, CPU threads divided between them")
    sweep.add_argument("--devices", help="GPUs to spread runs over, one run per device at a time, e.g. 0,1")
    sweep.add_argument("--list", action="store_true", help="print one command per run (for a scheduler) and stop")
    sweep.set_defaults(func=cmd_sweep)

    _finetune_parser(sub)

    baseline = sub.add_parser("baseline", help="train the embedded baseline again and ship it in baselines/")
    _parameter_options(baseline)
    baseline.set_defaults(func=cmd_baseline)

    refresh = sub.add_parser("refresh-notebooks", help="re-execute the source notebooks and save their outputs")
    refresh.set_defaults(func=cmd_refresh)

    params = sub.add_parser("params", help="list every parameter with its default and description")
    params.set_defaults(func=cmd_params)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
        command.add_argument(
            "--verbose",
            action="store_true",
            help="show the libraries' chatter too (exports of "
            "timing candidates, known harmless warnings), which runs keep in runs/<run>/log.txt",
        )
    return parser


def _parameter_options(p, what: str = "the run", new_run: bool = False) -> None:
    """--params and --set, the way every command that takes parameters takes them (and --new-run for a run)."""
    p.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="FILE",
        help=f"parameter YAML of {what} (repeatable; later files override earlier ones)",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help=f"override one parameter of {what} (repeatable)"
    )
    if new_run:
        p.add_argument("--new-run", action="store_true", help="if the run exists, start a new one beside it")


def _table_option(p, flag: str, key: str, text: str = "") -> None:
    """An option setting one parameter: its type, default and help are the parameter table's (text: what the option
    means for this command, where that is not the table's help)."""
    param = parameters.BY_NAME[key]
    shown = f" (default: {param.default!r})" if param.default not in ("", None) else ""
    p.add_argument(flag, dest=key, default=None, metavar=param.type.__name__.upper(), help=(text or param.help) + shown)


def _finetune_parser(sub) -> None:
    ft = sub.add_parser("finetune", help="train a pruned checkpoint further, its structure kept (not YOLO().train)")
    ft.add_argument("--model", required=True, help="pruned checkpoint, e.g. runs/<run>/final.pt")
    _table_option(ft, "--data", "data", "Ultralytics data YAML the model was trained on (needed: a model is given)")
    _table_option(ft, "--cfg", "cfg")
    _table_option(ft, "--epochs", "finetune_epochs", "epochs to train, at least 1 (the parameter finetune_epochs)")
    ft.add_argument(
        "--teacher", help="checkpoint to distil from, e.g. the unpruned model (distill_weight 1 unless set)"
    )
    ft.add_argument("--name", help="folder under <runs>/finetune/ (default: the model file's name; never overwritten)")
    _parameter_options(ft)
    ft.set_defaults(func=cmd_finetune)


def overrides_from(args) -> dict:
    """--set, then the options that set one parameter each (parsed as --set values, checked by the table)."""
    out = parameters.parse_set(args.set)
    for key in REFERENCE_OPTIONS.values():
        value = getattr(args, key, None)
        if value is not None:
            out[key] = parameters.parse_value(value) if parameters.BY_NAME[key].type is not str else value
    return out


def cmd_run(args) -> int:
    from prunelib.runs.pipeline import run_pipeline  # slow: see the note on imports above

    run = run_pipeline(args.params, overrides_from(args), args.stages, args.new_run)
    print(f"done: {run.rel(run.report_md)}")
    return 0


def cmd_prune(args) -> int:
    from prunelib.runs import open_run, plan, stages  # slow: see the note on imports above

    run = open_run(args.params, overrides_from(args), new_run=args.new_run)
    plan.announce(run)
    print(f"Run {run.name!r} in {run.rel(run.dir)}")
    stages.run_stages(run)
    print(f"done: {run.rel(run.final)}, {run.rel(run.report_md)}")
    return 0


def cmd_sweep(args) -> int:
    from prunelib.runs import sweep  # slow: see the note on imports above

    if args.jobs < 1:
        raise UserError(f"--jobs: {args.jobs} is not allowed; expected 1 or more")
    plan = sweep.load(args.sweep, args.params, args.grid, args.set, args.name)
    if args.list:
        print(sweep.listing(plan), end="")
        return 0
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else []
    status = sweep.run_sweep(plan, jobs=args.jobs, devices=devices)
    failed = sorted(name for name, record in status.items() if record["status"] != "done")
    print(
        f"done: {len(status) - len(failed)} of {len(status)} runs finished"
        + (f"; failed: {', '.join(failed)} (see sweep.json)" if failed else "")
        + f"; {relative(plan.folder.summary_md)}"
    )
    return 1 if failed else 0


def cmd_finetune(args) -> int:
    # slow: see the note on imports above
    from prunelib.runs.opening import check_inputs
    from prunelib.surgery.checkpoints import load_model
    from prunelib.training.finetuning import continue_training

    params = finetune_parameters(args)
    if params["finetune_epochs"] < 1:
        raise UserError(f"--epochs: {params['finetune_epochs']} is not allowed; expected 1 or more")
    check_inputs(Settings.of(params))
    if args.teacher:
        load_model(resolve(args.teacher), "--teacher")
    out = next_free(runs_root(params["runs_dir"]) / "finetune" / (args.name or resolve(args.model).stem))
    best, last = continue_training(Settings.of(params), out, teacher=resolve(args.teacher) if args.teacher else None)
    print(f"done: {relative(best)}, {relative(last)} (load with YOLO(path); no prunelib needed)")
    return 0


def finetune_parameters(args) -> dict:
    """finetune's parameters: --params, --set, then its own options; with --teacher, distill_weight is 1 unless a
    file or --set gives it (a teacher with distill_weight 0 would teach nothing: refused)."""
    given = {
        "model": args.model,
        "data": args.data,
        "cfg": args.cfg,
        "finetune_epochs": parameters.parse_value(args.finetune_epochs) if args.finetune_epochs else None,
    }
    overrides = parameters.parse_set(args.set) | {k: v for k, v in given.items() if v is not None}
    if image_folder(overrides.get("data", "")):
        raise UserError(
            f"--data: {overrides['data']!r} is a folder of images; finetune takes a data YAML (prune and run label a "
            "folder with the original model; their labelled set's data.yaml is in the runs cache, labelled-*)"
        )
    stated = "distill_weight" in overrides or any("distill_weight" in parameters.read_yaml(f) for f in args.params)
    if args.teacher and not stated:
        overrides["distill_weight"] = 1.0
    from prunelib.runs.opening import from_inputs  # slow: see the note on imports above

    params = from_inputs(parameters.load([resolve(f) for f in args.params], overrides))
    if args.teacher and not params["distill_weight"]:
        raise UserError(
            "--teacher: distill_weight is 0 (given by --set or a --params file), so the teacher would "
            "teach nothing; drop --teacher or set distill_weight above 0"
        )
    return params


def cmd_baseline(args) -> int:
    from prunelib.training import embedded  # slow: see the note on imports above

    params = parameters.load([resolve(f) for f in args.params], parameters.parse_set(args.set))
    if params["model"]:
        raise UserError(f"model: {params['model']!r} is set; the embedded baseline is only for runs without one")
    embedded.ship(Settings.of(params))
    return 0


def cmd_params(args) -> int:

    print(parameters.describe())
    return 0


def cmd_refresh(args) -> int:
    from prunelib.runs.pipeline import refresh_sources  # slow: see the note on imports above

    refresh_sources()
    return 0
