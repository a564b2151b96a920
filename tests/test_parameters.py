import pytest

from prunelib.core import parameters
from prunelib.errors import UserError
from prunelib.core.parameters import load, parse_set


def test_defaults_keep_the_reference_criterion_and_budget_with_the_measured_recovery_recipe():
    p = load()
    assert (p["target_prune_rate"], p["max_map_drop"]) == (0.5, 0.2)
    assert p["importance"] == "l2" and p["ignore_layers"] == ["Detect", "C2PSA", "PSABlock"]
    assert (p["iterative_steps"], p["finetune_epochs"], p["bn_recalibration"]) == (1, 10, 256)
    assert (p["match_original"], p["label_weight"], p["freeze_bn_stats"]) == (1.0, 1.0, False)  # defaults-recovery.md


def test_every_parameter_is_described_and_its_default_passes_its_own_check():
    for p in parameters.PARAMS:
        assert p.help and len(p.help) < 120
        assert p.check is None or p.check(p.default) is None, p.name
    table = parameters.describe()
    assert all(name in table.splitlines()[-1] for name in parameters.SYNTH_CLASSES)  # as synth_classes' help says


def test_later_files_override_earlier_then_overrides(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("iterative_steps: 3\nimgsz: 64\n")
    b.write_text("iterative_steps: 4\n")
    p = load([a, b], {"imgsz": 96})
    assert (p["iterative_steps"], p["imgsz"]) == (4, 96)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown parameter 'iterative_step'.*did you mean 'iterative_steps'"):
        load(overrides={"iterative_step": 3})


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("iterative_steps", "five", r"iterative_steps: expected an integer, got 'five'"),
        ("iterative_steps", 0, r"iterative_steps: 0 is not allowed"),
        ("target_prune_rate", 0.0, r"target_prune_rate: 0.0 is not allowed; expected a number in \(0, 1\)"),
        ("target_prune_rate", 1.0, r"target_prune_rate: 1.0 is not allowed"),
        ("target_speedup", 0.5, r"target_speedup: 0.5 is not allowed; expected 0 \(off"),
        ("target_speedup", 1.0, r"target_speedup: 1.0 is not allowed"),
        ("imgsz", 100, r"imgsz: 100 is not allowed; expected 0 \(the model's own\) or a multiple of 32"),
        ("importance", "l3", r"importance: 'l3' is not allowed; expected one of l2, l1"),
        ("ignore_layers", ["Detec"], r"ignore_layers: 'Detec' is not .*did you mean 'Detect'"),
        ("global_pruning", "yes", r"global_pruning: expected true or false"),
        ("run_name", "../x", r"run_name: '../x' is not allowed"),
        ("model", "missing.pt", r"model: file 'missing.pt' does not exist"),
        ("model", "weights.onnx", r"model: 'weights.onnx' is not allowed; expected a .pt file"),
        ("data", "nowhere/data.yaml", r"data: file 'nowhere/data.yaml' does not exist"),
        ("export_formats", ["onnx", "tflite"], r"export_formats: \['onnx', 'tflite'\] is not allowed; expected a list "
         r"of distinct formats among onnx, torchscript, openvino, with onnx"),
        ("export_formats", ["torchscript"], r"export_formats: .* with onnx"),
        ("int8_fraction", 0, r"int8_fraction: 0.0 is not allowed; expected a number in \(0, 1\]"),
        ("round_to", "fast", r"round_to: expected an integer or auto, got 'fast'"),
        ("round_to", -1, r"round_to: -1 is not allowed; expected an integer >= 0, or auto"),
        ("int8_onnx_form", "u8u8", r"int8_onnx_form: 'u8u8' is not allowed; expected one of auto, fastest, u8s8, "
         r"u8s8-reduce-range, qoperator-u8s8, s8s8, s8s8-per-channel"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(key, value, message):
    with pytest.raises(UserError, match=message):
        load(overrides={key: value})


def test_parse_set_reads_yaml_scalars_and_lists():
    d = parse_set(["iterative_steps=3", "ignore_layers=[Detect, 22]", "data=", "run_name=a-b"])
    assert d == {"iterative_steps": 3, "ignore_layers": ["Detect", 22], "data": "", "run_name": "a-b"}
    with pytest.raises(UserError, match="expected key=value"):
        parse_set(["iterative_steps"])


def test_comma_separated_ignore_layers_and_indices():
    assert load(overrides={"ignore_layers": "Detect,C2PSA,22"})["ignore_layers"] == ["Detect", "C2PSA", "22"]


def test_own_model_requires_data(tmp_path):
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"x")
    with pytest.raises(UserError, match="data: a data YAML, or a folder of images, is required"):
        load(overrides={"model": str(pt)})


def test_bad_parameter_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must hold flat 'key: value' lines"):
        load([f])
    f.write_text("a: [\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        load([f])


def test_command_line_values_in_exponent_notation_are_numbers():
    assert parse_set(["lr0=1e-3", "batch=8", "run_name=1e3x"]) == {"lr0": 0.001, "batch": 8, "run_name": "1e3x"}
    assert load(overrides=parse_set(["lr0=5e-4", "optimizer=SGD"]))["lr0"] == 5e-4


def test_the_modules_acting_on_a_choice_name_what_the_table_allows():
    from prunelib.deployment import export
    from prunelib.surgery import pruner
    from prunelib.training import synthetic

    assert tuple(pruner.IMPORTANCES) == parameters.IMPORTANCES
    assert tuple(export.RUNTIMES) == parameters.EXPORT_FORMATS
    assert synthetic.CLASSES == parameters.SYNTH_CLASSES


def test_each_option_of_a_parameter_shows_the_tables_help_and_default():
    from prunelib import cli

    text = cli.build_parser()._subparsers._group_actions[0].choices["prune"].format_help()
    for flag, key in cli.REFERENCE_OPTIONS.items():
        param = parameters.BY_NAME[key]
        assert flag in text and " ".join(param.help.split()[:3]) in " ".join(text.split()), flag
    assert "(default: 1)" in " ".join(text.split())  # --iterative-steps: the table's default, not the reference's 10


def test_typed_settings_are_the_parameters_of_their_names():
    from dataclasses import fields

    from prunelib.core.settings import Pruning, Training

    p = load(overrides={"ignore_layers": ["Detect", 22], "lr0": 0.003, "optimizer": "AdamW", "round_to": 8})
    for cls in (Pruning, Training):
        settings = cls.of(p)
        assert all(f.name in parameters.BY_NAME for f in fields(cls)), cls
        assert all(getattr(settings, f.name) == (tuple(v) if isinstance(v := p[f.name], list) else v)
                   for f in fields(cls))  # fmt: skip
    assert Pruning.of(p).ignore_layers == ("Detect", 22) and Training.of(p).lr0 == 0.003
    with pytest.raises(Exception):  # frozen: a function cannot change what the run asked for
        Pruning.of(p).round_to = 8


@pytest.mark.parametrize("overrides, message", [
    ({"isomorphic": True}, r"isomorphic: true does nothing without global_pruning: true"),
    ({"target_prune_rate": 0.5, "max_steps": 4}, r"max_steps: 4 does nothing without target_speedup"),
    ({"target_speedup": 2.0, "iterative_steps": 3, "max_steps": 2}, r"max_steps: 2 is less than iterative_steps 3"),
    ({"device": "gpu"}, r"device: 'gpu' is not allowed; expected 'cpu', 'mps', a GPU index such as 0"),
    ({"lr0": 0.002}, r"lr0: 0.002 does nothing under optimizer: auto .* set an optimizer too \(SGD, "),
    ({"match_features": 1.0, "match_original": 0.0}, r"match_features: 1.0 does nothing with match_original 0"),
])  # fmt: skip
def test_settings_that_do_nothing_or_contradict_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        load(overrides=overrides)
    assert load(overrides={"isomorphic": True, "global_pruning": True})["isomorphic"]  # together they are allowed
    assert load(overrides={"lr0": 0.002, "optimizer": "SGD"})["lr0"] == 0.002


def test_imgsz_is_the_models_own_unless_set(tmp_path):
    from prunelib.runs.opening import model_imgsz
    from prunelib.surgery import checkpoints
    from ultralytics.nn.tasks import DetectionModel

    assert load()["imgsz"] == 320  # no model of the user's: the embedded baseline's size
    model = DetectionModel("yolo11n.yaml", nc=2, verbose=False)
    for size, expected in ((640, 640), ([480, 640], 640), (None, None)):
        path = checkpoints.save_model(model, tmp_path / f"m{size}.pt", train_args={"imgsz": size} if size else {})
        data = tmp_path / "data.yaml"
        data.write_text("names: [a, b]\n")
        params = load(overrides={"model": str(path), "data": str(data)})
        assert params["imgsz"] == 0
        if expected is None:
            with pytest.raises(UserError, match=r"imgsz: 0 takes the size model .* records no training size; set "):
                model_imgsz(params)
        else:
            assert model_imgsz(params)["imgsz"] == expected
        assert model_imgsz({**params, "imgsz": 96})["imgsz"] == 96  # set: kept


def test_a_device_written_as_ultralytics_takes_it():
    assert load(overrides={"device": 0})["device"] == "0" and load(overrides={"device": "0,1"})["device"] == "0,1"


def test_the_goal_named_last_decides(tmp_path):
    speed = tmp_path / "speed.yaml"
    speed.write_text("target_speedup: 2.0\n")
    rate = tmp_path / "rate.yaml"
    rate.write_text("target_prune_rate: 0.3\n")
    assert load([speed, rate])["target_speedup"] == 0.0 and load([speed, rate])["target_prune_rate"] == 0.3
    assert load([rate, speed])["target_speedup"] == 2.0
    assert load([speed], {"target_prune_rate": 0.4})["target_speedup"] == 0.0  # --set on top of a file
    with pytest.raises(UserError, match="target_speedup and target_prune_rate are all set in overrides"):
        load(overrides={"target_speedup": 2.0, "target_prune_rate": 0.5})
    with pytest.raises(UserError, match="target_latency_speedup and target_speedup are all set in overrides"):
        load(overrides={"target_speedup": 2.0, "target_latency_speedup": 1.5})
    latency = tmp_path / "latency.yaml"
    latency.write_text("target_latency_speedup: 1.5\n")
    p = load([speed, latency])
    assert (p["target_latency_speedup"], p["target_speedup"]) == (1.5, 0.0)  # the later goal decides
    assert load([latency, rate])["target_latency_speedup"] == 0.0 and load([latency, speed])["target_speedup"] == 2.0
    assert load([latency], {"max_steps": 4})["max_steps"] == 4  # steps on past the plan, as a MACs goal does


def test_cfg_keys_the_parameters_decide_are_said(tmp_path):
    from prunelib.core.settings import Settings, Training
    from prunelib.runs.opening import check_inputs
    from prunelib.training import arguments

    cfg = tmp_path / "train.yaml"
    cfg.write_text("lr0: 0.001\noptimizer: SGD\nepochs: 300\nmosaic: 0.5\nbatch: 16\nmodel: x.pt\n")
    params = load(overrides={"cfg": str(cfg)})
    notes = arguments.overridden(Training.of(params))
    assert notes == ["lr0 0.001 -> 0.01 (set lr0)", "optimizer 'SGD' -> 'auto' (set optimizer)",
                     "epochs 300 (set finetune_epochs)"]  # fmt: skip
    said = []
    check_inputs(Settings.of(params), log=said.append)
    assert len(said) == 1 and said[0].startswith("cfg: ") and "decide 3 of its keys" in said[0]
    matching = load(overrides={"cfg": str(cfg), "optimizer": "SGD", "lr0": 0.001})
    assert len(arguments.overridden(Training.of(matching))) == 1  # only epochs now; mosaic, batch 16 hold
    args = arguments.ultralytics_args(Training.of(matching), "finetune", "d.yaml", epochs=2)
    assert (args["mosaic"], args["optimizer"], args["lr0"], "model" not in args) == (0.5, "SGD", 0.001, True)


def test_training_seed_changes_fine_tuning_alone():
    from prunelib.core.settings import Source, Training
    from prunelib.training import arguments, embedded

    plain, again = load(overrides={"seed": 4}), load(overrides={"seed": 4, "training_seed": 7})
    finetune = [arguments.ultralytics_args(Training.of(p), "finetune", "d.yaml")["seed"] for p in (plain, again)]
    train = [arguments.ultralytics_args(Training.of(p), "train", "d.yaml")["seed"] for p in (plain, again)]
    assert finetune == [4, 7] and train == [4, 4]  # the baseline trains as before
    assert embedded.baseline_settings(Source.of(plain)) == embedded.baseline_settings(Source.of(again))


def test_round_to_auto_is_the_channel_block_measured_on_this_machine():
    from prunelib import machine
    from prunelib.core.settings import Pruning

    p = load(overrides={"round_to": "auto"})
    assert p["round_to"] == "auto"  # the run's parameters keep what was asked; the machine that prunes sizes it
    block = machine.channel_block()
    assert Pruning.of(p).round_to == "auto"  # settings keep it too; the cut resolves it where it is planned or made
    assert Pruning.of(p).channel_multiple == block
    assert Pruning.of(load(overrides={"round_to": 0})).channel_multiple == 0
    assert Pruning.of(load(overrides={"round_to": 8})).channel_multiple == 8
    assert Pruning.of(load()).channel_multiple == block  # the built-in default
    assert block in (1, 4, 8, 16, 32)
    flags = machine.cpu()["flags"]
    if "avx512f" in flags:  # onnxruntime's kernels block channels by vector width: 16 floats in AVX-512, 8 in AVX2
        assert block == 16
    elif "avx2" in flags:
        assert block == 8


def test_every_parameter_reaches_the_run_as_a_typed_setting():
    """Settings.of holds every parameter of the table, under its own name, in some concern; no field is invented."""
    from dataclasses import FrozenInstanceError, fields

    from prunelib.core.settings import CONCERNS, Settings

    named = {f.name for concern in CONCERNS.values() for f in fields(concern)}
    assert named == set(parameters.BY_NAME)
    params = load(overrides={"ignore_layers": ["Detect", 7], "round_to": 8, "alternatives": []})
    settings = Settings.of(params)
    assert settings.pruning.ignore_layers == ("Detect", 7) and settings.pruning.round_to == 8  # lists frozen as tuples
    assert settings.goal.target_latency_speedup == params["target_latency_speedup"] == 2.0
    assert settings.schedule.epochs() == {"budget": 10, "sparse": 0, "step": 10, "final": 0}
    with pytest.raises(FrozenInstanceError):
        settings.training.lr0 = 0.5
