"""Annotated pathology: the fastMRI+ box file, the boxes' place in the image, the per-box metrics,
and the experiment end to end on the tiny study."""

import numpy as np
import pandas as pd
import pytest
import yaml

from robustcs.annotations import Box, annotated_stems, boxes_of, read_boxes
from robustcs.features import box_metrics
from robustcs.study import Study

from conftest import TINY_CONFIG, snakemake

FASTMRI_PLUS = """file,slice,study_level,x,y,width,height,label
file1000001,15,No,120,140,20,10,Meniscus Tear
file1000001,15,No,60,40,8,8,Bone-Marrow Edema
file1000001,,Yes,,,,,Exam Quality
file1000002.h5,3,No,0,0,5,5,Meniscus Tear
"""


def test_fastmri_plus_rows_become_boxes(tmp_path):
    path = tmp_path / "knee.csv"
    path.write_text(FASTMRI_PLUS)
    boxes = read_boxes(path)
    assert [(b.stem, b.slice, b.x, b.y, b.width, b.height, b.line) for b in boxes] == [
        ("file1000001", 15, 120, 140, 20, 10, 2), ("file1000001", 15, 60, 40, 8, 8, 3),
        ("file1000002", 3, 0, 0, 5, 5, 5)]  # the study-level row (line 4) has no box; ".h5" is dropped
    assert annotated_stems(boxes) == ["file1000001", "file1000002"]
    assert [b.label for b in read_boxes(path, labels=["Meniscus Tear"])] == ["Meniscus Tear"] * 2
    assert len(boxes_of(boxes, "file1000001")) == 2


@pytest.mark.parametrize("text,words", [
    ("file,slice,x,y,width\nf,1,2,3,4\n", "missing column(s) ['height']"),
    ("file,slice,x,y,width,height\nf,1,2,3,four,5\n", "line 2: width 'four' is not a number"),
    ("file,slice,x,y,width,height\nf,1,2,3,0,5\n", "line 2: width '0' must be an integer >= 1"),
    ("file,slice,x,y,width,height\nf,1.5,2,3,4,5\n", "line 2: slice '1.5' must be an integer >= 0"),
    ("file,slice,x,y,width,height\n,1,2,3,4,5\n", "line 2: empty file name"),
    ("file,slice,x,y,width,height\nf,,2,3,4,5\n", "line 2: empty ['slice']"),
    ("file,slice,x,y,width,height,label\nf,1,2,3,4,5,Cartilage\n", "no box with a label in ['Meniscus Tear']"),
])
def test_malformed_files_are_refused_with_file_and_line(tmp_path, text, words):
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_boxes(path, labels=["Meniscus Tear"] if "label" in text else None)
    assert str(path) in str(err.value) and words in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"nothing\.csv: cannot be read"):
        read_boxes(tmp_path / "nothing.csv")


def test_flipped_boxes_count_rows_from_the_bottom():
    box = Box("f", 0, x=10, y=5, width=4, height=3, label="", line=2)
    assert box.rows_cols((320, 320), flip_vertical=False) == (5, 8, 10, 14)
    assert box.rows_cols((320, 320), flip_vertical=True) == (312, 315, 10, 14)
    with pytest.raises(ValueError, match="does not lie inside the 6 x 320 reference"):
        box.rows_cols((6, 320), flip_vertical=False)


def test_box_metrics_see_only_what_is_inside_the_box(rng):
    target = rng.uniform(0.5, 1.0, (48, 48))
    target[30:36, 10:16] = 3.0  # a bright lesion in the lower part of the image
    lost = target.copy()
    lost[30:36, 10:16] = target.mean()  # a reconstruction that misses it
    lesion = Box("f", 0, x=10, y=48 - 36, width=6, height=6, label="", line=2)  # annotated on the flipped image
    bounds = [lesion.rows_cols(target.shape, flip_vertical=True), (0, 6, 0, 6)]
    assert bounds[0] == (30, 36, 10, 16)
    exact = box_metrics(target, target, bounds)
    assert all(r["mse_box"] == 0 and r["mse_box_meanstd"] == 0 for r in exact)
    missed = box_metrics(target, lost, bounds)
    assert missed[0]["mse_box_meanstd"] > 1.0  # several standard deviations inside the lesion's box
    np.testing.assert_allclose(missed[0]["mse_box"], np.mean((target[30:36, 10:16] - target.mean()) ** 2) / 9.0)
    # elsewhere the pixels agree: no error in the reference's scale, only what the global mean/std scaling moved
    assert missed[1]["mse_box"] == 0 and missed[1]["mse_box_meanstd"] < missed[0]["mse_box_meanstd"] / 5
    with pytest.raises(ValueError, match="do not lie inside"):
        box_metrics(target, target, [(40, 50, 0, 5)])


def _tiny_with_pathology(tmp_path, csv_text, **block):
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    (tmp_path / "boxes.csv").write_text(csv_text)
    cfg["pathology"] = {"annotations": str(tmp_path / "boxes.csv"), "datasets": ["tiny_src"], **block}
    return cfg


def test_config_checks_read_the_annotation_file(tmp_path):
    cfg = _tiny_with_pathology(tmp_path, "file,slice,x,y,width,height\ntiny_src_test_000,0,2,3,4,5\n")
    assert Study.from_config(cfg).pathology_settings()["flip_vertical"] is True
    with pytest.raises(ValueError, match=r"config pathology\.annotations: annotations .*boxes\.csv: missing column"):
        Study.from_config(_tiny_with_pathology(tmp_path, "file,slice,x,y\nf,1,2,3\n"))
    cfg["pathology"]["annotations"] = str(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match=r"absent\.csv: cannot be read"):
        Study.from_config(cfg)
    cfg = _tiny_with_pathology(tmp_path, "file,slice,x,y,width,height\nf,0,2,3,4,5\n", methods=["no_such"])
    with pytest.raises(ValueError, match=r"config pathology\.methods: 'no_such' is not one of methods"):
        Study.from_config(cfg)


@pytest.mark.slow
@pytest.mark.long
def test_pathology_end_to_end(tmp_path):
    """Two variants score three boxes on both slices of the tiny test file (rows counted from the bottom, as
    fastMRI+ annotated), and a box annotated on a slice the manifest lacks is refused naming the file."""
    csv_text = ("file,slice,study_level,x,y,width,height,label\n"
                "tiny_src_test_000.h5,0,No,18,20,8,6,Lesion\n"
                "tiny_src_test_000.h5,1,No,20,14,6,6,Lesion\n"
                "tiny_src_test_000.h5,1,No,2,2,4,4,Background\n")
    cfg = _tiny_with_pathology(tmp_path, csv_text, methods=["zf", "cg_a"])
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    work = tmp_path / "work"
    snakemake("--cores", "2", "--configfile", str(config), "--directory", str(work), "results/tables/pathology.csv")
    per_box = pd.read_csv(work / "results/tables/pathology.csv")
    assert len(per_box) == 3 * 2 and set(per_box["method"]) == {"zf", "cg_a"}
    assert set(per_box["label"]) == {"Lesion", "Background"}
    assert (per_box["mse_box"] >= 0).all() and per_box["ssim"].between(0, 1).all()
    # rows counted from the bottom of the 48-px reference: y 20, height 6 -> rows 22:28
    first = per_box[(per_box["method"] == "zf") & (per_box["slice"] == 0)].iloc[0]
    assert (first["row0"], first["row1"], first["col0"], first["col1"]) == (22, 28, 18, 26)
    summary = pd.read_csv(work / "results/tables/pathology_summary.csv")
    assert list(summary["boxes"]) == [3, 3] and list(summary["slices"]) == [2, 2]
    # a box on a slice that is not in the manifest: the job fails naming the annotation file and the slice
    (tmp_path / "boxes.csv").write_text(csv_text + "tiny_src_test_000.h5,7,No,2,2,4,4,Lesion\n")
    proc = snakemake("--cores", "2", "--configfile", str(config), "--directory", str(work),
                     "results/tables/pathology.csv", check=False)
    assert proc.returncode != 0
    log = (work / "results/logs/pathology/tiny_src/random4x/zf/tiny_src_test_000.log").read_text()
    assert "boxes.csv" in log and "slices [7] are annotated but not in the manifest" in log
