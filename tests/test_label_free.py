"""A folder of unlabelled images as the run's data (prunelib.training.pseudo_labels): a seeded share is held back for
validation, the model labels every image with its own detections, fine-tuning learns the original's outputs alone,
and the report says what the scores then measure. Bad folders are refused in one line before anything is written."""

import shutil

import pytest
import yaml
from ultralytics import YOLO

from conftest import SMOKE, cli
from prunelib import cli as prunelib_cli
from prunelib.core.settings import Settings
from prunelib.training import embedded, pseudo_labels
from prunelib.training.agreement import CONF
from prunelib.training.datasets import check_data_yaml, label_path


@pytest.fixture(scope="module")
def folder(smoke_start, tmp_path_factory):
    """40 of the smoke set's training images, labels left behind, some in a subfolder, two of one name."""
    out = tmp_path_factory.mktemp("unlabelled") / "photos"
    (out / "more").mkdir(parents=True)
    for i, image in enumerate(check_data_yaml(smoke_start["data"])["train"][:40]):
        shutil.copy(image, (out / "more" if i % 4 == 0 else out) / f"{i:03d}{image.suffix}")
    shutil.copy(image, out / "more" / f"{1:03d}{image.suffix}")  # the same name as one in the folder above
    return out


def test_a_seeded_share_is_held_back_for_validation(tmp_path):
    images = [tmp_path / f"{i}.jpg" for i in range(10)]
    held = pseudo_labels.split(images, seed=0)
    assert len(held["val"]) == round(pseudo_labels.VAL_SHARE * 10) and set(held["train"]) | set(held["val"]) == set(
        images
    )
    assert not set(held["train"]) & set(held["val"])
    assert held == pseudo_labels.split(images, seed=0) and held != pseudo_labels.split(images, seed=1)
    assert len(pseudo_labels.split(images[:2], seed=0)["val"]) == 1  # at least one, even from two images


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root, r"holds 0 images .* needs at least 2"),
        (lambda root: (root / "a.jpg").write_bytes(b"x") and root, r"holds 1 image "),
    ],
)
def test_a_folder_with_too_few_images_is_refused_in_one_line(make, message, smoke_start, tmp_path, capsys):
    root = tmp_path / "empty"
    root.mkdir()
    make(root)
    args = ["prune", "--params", str(SMOKE), "--run-name", "few-images"]
    code = prunelib_cli.main([*args, "--set", f"model={smoke_start['model']}", "--set", f"data={root}"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert err.startswith("error: data: folder") and __import__("re").search(message, err)


def test_a_folder_without_the_model_that_labels_it_is_refused(folder, capsys):
    code = prunelib_cli.main(["prune", "--params", str(SMOKE), "--run-name", "no-model", "--set", f"data={folder}"])
    err = capsys.readouterr().err
    assert code != 0 and "the model that would label it is not given" in err


@pytest.mark.slow
def test_a_folder_of_images_runs_through_prune(folder, smoke_start, runs_root):
    sets = [f"model={smoke_start['model']}", f"data={folder}", "run_name=label-free", "iterative_steps=1",
            "sensitivity=false", "detection_images=0", "export_formats=[onnx]", "int8=false"]  # fmt: skip
    r = cli("prune", "--params", SMOKE, *(a for s in sets for a in ("--set", s)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run_dir = runs_root / "label-free"
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert (params["match_original"], params["label_weight"], params["freeze_bn_stats"]) == (1.0, 0.0, True)

    # the labelled set: every image of the folder, once, each labelled with the model's own detections
    data = embedded.data_yaml(Settings.of(params))
    info = check_data_yaml(data)
    assert len(info["train"]) + len(info["val"]) == 41 and len(info["val"]) == round(41 * pseudo_labels.VAL_SHARE)
    model = YOLO(smoke_start["model"])
    for image in info["val"][:4]:
        boxes = model.predict(str(image), imgsz=64, conf=CONF, verbose=False)[0].boxes
        path = label_path(image)
        lines = path.read_text().splitlines() if path.is_file() else []
        assert len(lines) == len(boxes)
        assert sorted(int(line.split()[0]) for line in lines) == sorted(int(c) for c in boxes.cls)

    # the unpruned model scores high against its own detections; the report says what that measures
    unpruned = yaml.safe_load((run_dir / "unpruned.json").read_text())
    assert unpruned["map50_95"] > 0.8
    report = (run_dir / "report.md").read_text()
    assert "**No labels**" in report and "measures agreement with the original, not accuracy" in report
    assert "the original's outputs alone" in report


def test_finetune_refuses_a_folder_in_one_line(folder, smoke_start, capsys):
    code = prunelib_cli.main(["finetune", "--model", str(smoke_start["model"]), "--data", str(folder)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "is a folder of images; finetune takes a data YAML" in err


def test_a_folder_learns_the_originals_outputs_alone_unless_the_run_set_its_targets(tmp_path):
    from prunelib.core import parameters
    from prunelib.runs import opening

    base = {**parameters.load(), "data": str(tmp_path)}  # a folder: every default target is the folder's recipe
    targets = ("match_original", "label_weight", "freeze_bn_stats")
    assert tuple(opening.folder_data(base)[k] for k in targets) == (1.0, 0.0, True)
    for given in ({"match_original": 0.0}, {"label_weight": 0.5}):  # the run's own targets are kept as given
        assert opening.folder_data({**base, **given}) == {**base, **given}
    yaml_data = {**base, "data": ""}
    assert opening.folder_data(yaml_data) == yaml_data  # a data YAML (here: the embedded set) keeps the defaults
