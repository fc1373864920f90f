"""Benchmark: the ESPIRiT stage (sigpy, crop-and-interpolate) against BART's ``ecalib`` on the same slices.

Both get the same undersampled k-space (4x random mask, centre fraction 0.08, as the study's knee
data) of fastMRI-sized slices (640 x 368 with readout oversampling, 15 coils by default), in one run.
Per slice it prints both times and the agreement |<s_ours, s_bart>| averaged over the pixels inside
both supports. The last line reads ``ratio=<ours/bart total time> agreement=<min over slices>``.

    python bench/sensitivities.py [--slices 3] [--coils 15] [--size 320] [--oversampling 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from fastmri_like import add_arguments, fastmri_like  # noqa: E402
from robustcs.bart import bart_ecalib  # noqa: E402
from robustcs.sensitivities import EspiritSpec, espirit_maps, map_agreement, map_support  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--lowres-factor", type=int, default=EspiritSpec().lowres_factor)
    args = ap.parse_args()

    spec = EspiritSpec(lowres_factor=args.lowres_factor)
    kspace, _, mask = fastmri_like(args)
    print(f"k-space {kspace.shape[1:]} (coils, H, W), mask 4x, {int(mask.sum())} lines; "
          f"ESPIRiT calib {spec.calib_width}, kernel {spec.kernel_width}, lowres factor {spec.lowres_factor}")

    # warm-up (numba/FFT plans) outside the timing
    espirit_maps(kspace[0], mask, spec)
    t_ours = t_bart = 0.0
    agreements = []
    for s in range(kspace.shape[0]):
        t0 = time.perf_counter()
        ours = espirit_maps(kspace[s], mask, spec)
        t1 = time.perf_counter()
        ref = bart_ecalib(kspace[s] * mask, calib_width=spec.calib_width, kernel_width=spec.kernel_width,
                          threshold=spec.threshold, crop=spec.crop)
        t2 = time.perf_counter()
        t_ours += t1 - t0
        t_bart += t2 - t1
        sup = map_support(ours) & map_support(ref)
        agree = map_agreement(ours, ref)[sup]
        agreements.append(float(agree.mean()))
        print(f"slice {s}: ours {t1 - t0:.2f}s bart {t2 - t1:.2f}s agreement mean {agree.mean():.4f} "
              f"p1 {np.percentile(agree, 1):.4f} support {int(sup.sum())}")
    print(f"ratio={t_ours / t_bart:.3f} agreement={min(agreements):.4f}")


if __name__ == "__main__":
    main()
