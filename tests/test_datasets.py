"""Every data-set layout Ultralytics trains on is taken, resolved as Ultralytics resolves it; what it would refuse,
or find out only mid-run, is one line."""

import shutil

import pytest
import yaml

from prunelib.errors import UserError
from prunelib.training import synthetic
from prunelib.training.datasets import check_data_yaml


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A small synthetic set: images/{train,val} and labels/{train,val} under one folder."""
    root = tmp_path_factory.mktemp("drawn") / "set"
    synthetic.generate(root, 4, 2, 64, classes=["square", "circle"])
    return root


def write(file, **data):
    file.write_text(yaml.safe_dump({**data, "names": {0: "square", 1: "circle"}}))
    return file


def counts(info):
    return info["nc"], len(info["train"]), len(info["val"])


def test_folders_with_an_absolute_path(drawn, tmp_path):
    assert counts(check_data_yaml(write(tmp_path / "d.yaml", path=str(drawn), train="images/train",
                                        val="images/val"))) == (2, 4, 2)  # fmt: skip


def test_image_lists_in_txt_files(drawn):
    train = sorted((drawn / "images" / "train").iterdir())
    (drawn / "train.txt").write_text("".join(f"./images/train/{p.name}\n" for p in train[:3]))  # relative, as COCO's
    (drawn / "val.txt").write_text("".join(f"{p}\n" for p in sorted((drawn / "images" / "val").iterdir())))  # absolute
    info = check_data_yaml(write(drawn / "lists.yaml", path=str(drawn), train="train.txt", val="val.txt"))
    assert counts(info) == (2, 3, 2) and all(p.is_file() for p in info["train"])


def test_a_list_of_folders_and_no_path_key(drawn):
    info = check_data_yaml(write(drawn / "both.yaml", train=["images/train", "images/val"], val="images/val"))
    assert counts(info) == (2, 6, 2)  # without path: the YAML's own folder


def test_a_relative_path_from_the_working_folder(drawn, monkeypatch):
    monkeypatch.chdir(drawn.parent)
    assert counts(check_data_yaml(write(drawn / "rel.yaml", path=drawn.name, train="images/train",
                                        val="images/val"))) == (2, 4, 2)  # fmt: skip


def test_roboflow_layout(drawn, tmp_path):
    export = tmp_path / "roboflow"
    for split, name in (("train", "train"), ("val", "valid")):  # <split>/images, <split>/labels, data.yaml beside
        for kind in ("images", "labels"):
            shutil.copytree(drawn / kind / split, export / name / kind)
    info = check_data_yaml(write(export / "data.yaml", train="../train/images", val="../valid/images"))
    assert counts(info) == (2, 4, 2)


def test_what_ultralytics_refuses_is_one_line(drawn, tmp_path):
    with pytest.raises(UserError, match=r"is refused by Ultralytics' dataset check: .*'train:' key missing"):
        check_data_yaml(write(tmp_path / "no-train.yaml", path=str(drawn), val="images/val"))
    gone = write(tmp_path / "gone.yaml", path=str(tmp_path / "nowhere"), train="images/train", val="images/val",
                 download="https://example.invalid/set.zip")
    with pytest.raises(UserError) as e:
        check_data_yaml(gone)
    line = str(e.value)
    assert "\n" not in line and "missing path" in line and "download: key is not followed" in line


@pytest.mark.parametrize("task, label", [("detect", "bboxes"), ("segment", "masks"), ("pose", "keypoints"),
                                         ("obb", "bboxes")])  # fmt: skip
def test_the_data_preview_draws_each_tasks_own_labels(task, label, tmp_path):
    """Ultralytics' training-batch plot of the first images: polygons, keypoints and rotated boxes, not columns 1-4
    of every label read as a box."""
    from PIL import Image

    from prunelib.core import parameters
    from prunelib.core.settings import Training
    from prunelib.presentation import plotting
    from prunelib.training import datasets

    data = synthetic.generate(tmp_path / task, 8, 2, 96, seed=3, task=task)
    batch = datasets.preview_batch(Training.of(parameters.load(overrides={"imgsz": 96})), data, 6, task)
    assert len(batch["im_file"]) == 6 and len(batch[label]) > 0
    assert batch["bboxes"].shape[-1] == (5 if task == "obb" else 4)  # OBB: x, y, w, h and the angle
    out = plotting.data_preview(batch, check_data_yaml(data)["names"], tmp_path / "preview.jpg")
    size = Image.open(out).size
    assert size[0] == 3 * 96 and size[1] % 96 == 0  # a grid of the 6 images at their size
