"""Aggregate tables: grouping, statistics and family order."""

import numpy as np
import pandas as pd
import pytest

from robustcs.tables import summarise, to_markdown


def test_summarise_mean_std_and_order():
    rows = []
    for family, method, ssims in [("varnet", "v", [0.9, 0.8]), ("zero_filled", "zf", [0.5, 0.7]), ("l1", "l", [0.6])]:
        for i, s in enumerate(ssims):
            rows.append({"dataset": "d", "mask": "m", "family": family, "method": method, "slice": i,
                         "ssim": s, "psnr": 30 * s, "nmse": 1 - s})
    out = summarise(pd.DataFrame(rows), ["dataset", "mask", "family", "method"])
    assert list(out["family"]) == ["zero_filled", "l1", "varnet"]
    zf = out[out["method"] == "zf"].iloc[0]
    assert zf["n"] == 2 and zf["ssim_mean"] == pytest.approx(0.6) and zf["ssim_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert out[out["method"] == "l"].iloc[0]["ssim_std"] == 0.0  # one slice: no spread, not NaN
    md = to_markdown(out)
    assert "| d | m | varnet | v | 2 | 0.850 ± 0.071 |" in md


def test_missing_columns():
    with pytest.raises(ValueError, match="psnr"):
        summarise(pd.DataFrame({"method": ["a"], "ssim": [1.0], "nmse": [0.0]}), ["method"])
