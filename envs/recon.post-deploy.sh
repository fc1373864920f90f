#!/usr/bin/env bash
# Run by Snakemake after creating the env: fastmri 0.3.0 declares torchvision and pytorch-lightning,
# which its parts used here do not import; nilearn is needed only for the MNI template it ships.
set -euo pipefail
python -m pip install --no-deps fastmri==0.3.0 nilearn==0.14.1
