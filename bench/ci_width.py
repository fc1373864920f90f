"""How wide a 95 % interval a number of test volumes (and slices per volume) buys, from the spread of a finished
run's per-slice scores: the paired clean SSIM difference of two variants and the attack − noise PSNR drop.

For a mean over n volumes of m slices each, with σ_b² the variance of the per-volume means (between volumes) and
σ_w² the variance of the slices around their volume's mean (within volumes):

    Var(mean) = (σ_b² + σ_w² / m) / n,    width ≈ 2 · 1.96 · sqrt(Var(mean))

(the width of the normal interval; the workflow's volume bootstrap gives about this for n ≳ 10). σ_w² is the
pooled within-volume variance of the run; σ_b² = var(volume means of the run, m₀ slices) − σ_w² / m₀, at least 0.
With one slice per volume (the attack of the demo) the two cannot be told apart and everything counts as
between-volume spread: the widths are then upper bounds for m > 1.

    python bench/ci_width.py results --dataset brain_t1 --mask random4x \\
        --pairs varnet_k5_c12_e15:unet_c16_e20 unet_c16_e20:l1_lam1e4 --attacked unet_c16_e20 varnet_k5_c12_e15
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

Z = 1.959964


def components(values: pd.DataFrame) -> tuple[float, float, int, float]:
    """(σ_b², σ_w², volumes, slices per volume m₀) of a per-slice column ``value`` grouped by ``stem``."""
    groups = values.groupby("stem")["value"]
    n_vol, m0 = groups.ngroups, float(groups.size().mean())
    if n_vol < 2:
        raise ValueError(f"needs at least 2 volumes, got {n_vol}")
    within = float(groups.var(ddof=1).fillna(0).mean()) if m0 > 1 else 0.0
    between = max(float(groups.mean().var(ddof=1)) - within / m0, 0.0)
    return between, within, n_vol, m0


def width(between: float, within: float, volumes: int, slices: int) -> float:
    """Expected width of the 95 % interval of a mean over ``volumes`` volumes of ``slices`` slices."""
    return 2 * Z * math.sqrt((between + within / slices) / volumes)


def clean_differences(results: Path, dataset: str, mask: str, a: str, b: str) -> pd.DataFrame:
    """Per-slice SSIM(a) − SSIM(b) on the same test slices (results/eval/{dataset}/{mask}/{variant}.csv)."""
    frames = []
    for name in (a, b):
        path = results / "eval" / dataset / mask / f"{name}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no per-slice scores of variant {name!r}")
        frames.append(pd.read_csv(path, dtype={"stem": str}).set_index(["stem", "slice"])["ssim"])
    diff = (frames[0] - frames[1]).dropna()
    return diff.rename("value").reset_index()


def attack_drops(results: Path, dataset: str, mask: str, name: str) -> pd.DataFrame:
    """Per-slice attack − noise PSNR drop (= PSNR(noise) − PSNR(attack)) at the run's largest ε."""
    files = sorted((results / "attack" / dataset / mask / name).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{results / 'attack' / dataset / mask / name}: no attack scores")
    rows = pd.concat([pd.read_csv(f, dtype={"stem": str}) for f in files])
    top = rows[rows["epsilon"] == rows["epsilon"].max()]
    psnr = top.pivot_table(index=["stem", "slice"], columns="kind", values="psnr")
    return (psnr["random"] - psnr["adversarial"]).rename("value").reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--mask", required=True)
    ap.add_argument("--pairs", nargs="*", default=[], help="a:b variant pairs for the clean SSIM difference")
    ap.add_argument("--attacked", nargs="*", default=[], help="variants whose attack − noise PSNR drop to size")
    ap.add_argument("--volumes", nargs="+", type=int, default=[5, 10, 20, 30, 50, 100])
    ap.add_argument("--slices", type=int, nargs="+", default=[1, 3, 10], help="slices per volume")
    args = ap.parse_args()
    cases = []
    for pair in args.pairs:
        a, sep, b = pair.partition(":")
        if not sep:
            sys.exit(f"--pairs: {pair!r} is not of the form a:b")
        cases.append((f"SSIM {a} − {b}", clean_differences(args.results, args.dataset, args.mask, a, b)))
    cases += [(f"attack − noise PSNR drop {n} (dB)", attack_drops(args.results, args.dataset, args.mask, n))
              for n in args.attacked]
    rows = []
    for label, values in cases:
        between, within, n_vol, m0 = components(values)
        for m in args.slices:
            row = {"statistic": label, "run": f"{n_vol} vol x {m0:g}", "sd_between": math.sqrt(between),
                   "sd_within": math.sqrt(within), "slices/vol": m}
            row.update({f"n={n}": width(between, within, n, m) for n in args.volumes})
            rows.append(row)
    pd.set_option("display.width", 250)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
