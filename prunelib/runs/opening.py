"""Opening a run: its parameters loaded and checked, everything the user points at checked, and only then the run
folder created (or reopened when its parameters match). The one way a run begins, for the CLI, the pipeline, the
notebooks and sweeps."""

from __future__ import annotations

import torch
import yaml

from prunelib import files, tasks
from prunelib.core import parameters
from prunelib.core.settings import Settings, image_folder
from prunelib.core.folder import Run, differences, manifest, next_free, runs_root
from prunelib.errors import UserError
from prunelib.paths import relative, resolve
from prunelib.surgery import checkpoints
from prunelib.deployment import alternatives
from prunelib.training import arguments, datasets, embedded, pseudo_labels, synthetic


def open_run(params_files=(), overrides: dict | None = None, run_name: str | None = None, new_run=False) -> Run:
    """Load and check parameters and inputs, then create the run folder, or reopen it when its parameters match."""
    overrides = dict(overrides or {})
    if run_name:
        overrides["run_name"] = run_name
    params = from_inputs(parameters.load([resolve(f) for f in params_files], overrides))
    run_dir = runs_root(params["runs_dir"]) / params["run_name"]
    if new_run:
        run_dir = next_free(run_dir)
        params["run_name"] = run_dir.name
    run = Run(run_dir, params)
    if run.params_yaml.is_file():
        stored = run.stored_params()
        diff = differences(stored, params)
        if diff:
            raise UserError(
                f"run {params['run_name']!r} exists with other parameters ({'; '.join(diff[:3])}); "
                f"resume with the same parameters, choose another run_name, or pass --new-run"
            )
        _check_device(params["device"])  # keys a run may change: checked again when it resumes
        if params["alternatives"] != stored.get("alternatives", []):
            _check_alternatives(run.settings)
        if parameters.check(stored) != params:  # may_change keys only
            files.write_text(run.params_yaml, yaml.safe_dump(params, sort_keys=False))  # the stages read them here
        return run
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"run folder {relative(run_dir)!r} exists but holds no params.yaml; choose another run_name")
    check_inputs(run.settings)
    try:
        files.write_text(run.params_yaml, yaml.safe_dump(params, sort_keys=False))
        run.write_json(run.manifest, manifest(run.settings.place))
    except OSError as e:
        raise UserError(f"runs_dir: cannot write the run folder {str(run_dir)!r} ({e.strerror or e})") from None
    return run


def from_inputs(params: dict) -> dict:
    """The parameters with what the user's inputs decide filled in: the model's training size (model_imgsz), the
    fine-tuning targets of a folder of unlabelled images (folder_data)."""
    return folder_data(model_imgsz(params))


def folder_data(params: dict) -> dict:
    """A folder of unlabelled images as data: its labels are the original's thresholded detections
    (training.pseudo_labels), so fine-tuning learns from the original's outputs alone with BatchNorm statistics kept
    (match_original 1, label_weight 0, freeze_bn_stats: the arm that kept a model trained by others where it was,
    bench/results/defaults-recovery.md) unless the parameters already set match_original or label_weight away from
    their defaults. The run's params.yaml says what was used."""
    targets = ("match_original", "label_weight")
    if not image_folder(params["data"]) or any(params[k] != parameters.BY_NAME[k].default for k in targets):
        return params
    return {**params, "match_original": 1.0, "label_weight": 0.0, "freeze_bn_stats": True}


def model_imgsz(params: dict) -> dict:
    """The parameters with imgsz 0 (the default) made the size the user's model was trained at: its checkpoint knows
    (Ultralytics' train_args); refused in one line when it does not. Without a model, the table already chose."""
    if params["imgsz"] or not params["model"]:
        return params
    size = checkpoints.trained_imgsz(resolve(params["model"]))
    if size is None or size % 32:
        found = "records no training size" if size is None else f"was trained at {size}, not a multiple of 32"
        raise UserError(
            f"imgsz: 0 takes the size model {params['model']!r} was trained at, but it {found}; set "
            "imgsz (a multiple of 32, e.g. 640)"
        )
    return {**params, "imgsz": size}


def check_inputs(settings: Settings, log=print) -> None:
    """Everything the user points at, checked before anything is written: the model (loadable, supported), the data
    YAML (and that the model predicts its classes) or folder of images (it holds some), the fine-tuning cfg YAML
    (against Ultralytics' own arguments; the keys the kit's parameters decide instead are said in one line)."""
    source, training = settings.source, settings.training
    _check_device(training.device)
    if source.image_folder:  # unlabelled images: their labels will be the model's own, of its classes
        pseudo_labels.images_in(resolve(source.data))
    data = datasets.check_data_yaml(resolve(source.data)) if source.data and not source.image_folder else None
    model = checkpoints.load_model(resolve(source.model)) if source.model else None
    if model is not None and data and tasks.classes(model) != data["nc"]:
        raise UserError(
            f"data: {source.data!r} has {data['nc']} classes but model {source.model!r} "
            f"predicts {tasks.classes(model)}; use the data set the model was trained on"
        )
    _check_alternatives(settings, model)
    if training.cfg:
        arguments.check_cfg_file(training.cfg)
        if notes := arguments.overridden(training):
            log(
                f"cfg: {training.cfg} is the base of fine-tuning, but the run's parameters decide "
                f"{len(notes)} of its keys: {'; '.join(notes)}"
            )


def _check_alternatives(settings: Settings, model=None) -> None:
    """The alternatives are checkpoints of the run's task and class count: the user's model's (model: it loaded
    already, else loaded here), or the synthetic set's (the embedded default)."""
    source = settings.source
    if not settings.alternatives.alternatives:
        return
    if source.model:
        model = model if model is not None else checkpoints.load_model(resolve(source.model))
        task, nc = tasks.of(model).name, tasks.classes(model)
    else:
        task, nc = embedded.synthetic_task(source), len(synthetic.class_names(source.synth_classes))
    alternatives.read(list(settings.alternatives.alternatives), task, nc)


def _check_device(device: str) -> None:
    """The GPUs named are there (torch sees them), before any folder is written."""
    if device == "cpu":
        return
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("device: 'mps' is not available on this machine; use device: cpu")
        return
    count = torch.cuda.device_count()
    missing = [i for i in device.split(",") if int(i) >= count]
    if missing:
        seen = f"torch sees {count} CUDA GPU{'s' if count != 1 else ''}" if count else "torch sees no CUDA GPU"
        raise UserError(
            f"device: {device!r} is not available here ({seen}); use device: cpu"
            + (f" or GPU indices below {count}" if count else "")
        )
