"""Compare the clean-quality tables of two runs of one config (e.g. on the CPU and on a GPU) within stated
tolerances, per family: the classical solvers (deterministic arithmetic) within --tol-classical, the seeded
and trained families within --tol-learned (float arithmetic of another device changes each Adam/RMSprop step,
and training follows the changed path). Prints every variant's difference and exits non-zero if one is over.

    python bench/compare_tables.py RUN_A/results/tables/clean.csv RUN_B/results/tables/clean.csv
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from robustcs import families


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol-classical", type=float, default=1e-3, help="max |ΔSSIM| of untrained, unseeded families")
    ap.add_argument("--tol-learned", type=float, default=0.05, help="max |ΔSSIM| of seeded or trained families")
    args = ap.parse_args()
    key = ["dataset", "mask", "method"]
    a, b = pd.read_csv(args.a), pd.read_csv(args.b)
    both = a.merge(b, on=key, suffixes=("_a", "_b"), how="outer", indicator=True)
    if (both["_merge"] != "both").any():
        sys.exit(f"the tables list different variants: {both.loc[both['_merge'] != 'both', key].values.tolist()}")
    failed = []
    for _, row in both.iterrows():
        fam = families.family(row["family_a"])
        tol = args.tol_learned if (fam.trained or fam.seeded) else args.tol_classical
        diff = abs(row["ssim_mean_a"] - row["ssim_mean_b"])
        ok = diff <= tol
        print(f"{row['dataset']:>12} {row['mask']:>10} {row['method']:>24}  SSIM {row['ssim_mean_a']:.4f} vs "
              f"{row['ssim_mean_b']:.4f}  |Δ| {diff:.2e} <= {tol:g}: {'ok' if ok else 'OVER'}")
        if not ok:
            failed.append(row["method"])
    if failed:
        sys.exit(f"over the tolerance: {failed}")
    print(f"tables agree: {len(both)} rows")


if __name__ == "__main__":
    main()
