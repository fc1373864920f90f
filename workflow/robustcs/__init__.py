"""robustcs: the library behind the MRI reconstruction robustness workflow.

Modules:
    util           seeding, atomic writes, logging for rule scripts
    fastmri_io     reading, writing and validating fastMRI-format multi-coil HDF5 files
    demo           the embedded demo data generator (real MR images from Python wheels)
    download       checksummed, resumable downloads and safe archive extraction
    ismrmrd_convert  ISMRMRD raw data (e.g. the Stanford 3D FSE knees) to fastMRI format
    ingest         builds a dataset's manifest from its configured sources
    masks          undersampling masks (fastmri.data.subsample), seeded per file
    sensitivities  ESPIRiT coil sensitivities (sigpy) from the sampled k-space centre
"""

__version__ = "0.1.0"
