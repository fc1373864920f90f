"""Small-feature recovery: synthetic features inserted into test images, and how well each comes back.

The experiment (robustness I (b) of Darestani, Chaudhari & Heckel 2021, "Measuring Robustness in Deep
Learning Based Compressive Sensing"): a small bright feature is added to the ground-truth image, the
multi-coil k-space is re-simulated with the same coil sensitivity maps, keeping the receiver noise that
is already in the measured data and the same undersampling mask, every method reconstructs it, and the
feature's pixels in the reconstruction are compared with those of the featured reference.

The study's setting (its facts):
    * one 5x5-pixel square per image, of intensity max(RSS)/6 added to the reference;
    * metric: MSE over the feature's pixels after each image (reference and reconstruction) is scaled
      to mean 0 and standard deviation 1 over the whole image.

Our choices, generalising it:
    * several features per slice, one per (shape, size, contrast) combination of a :class:`FeatureSpec`:
      squares or discs, sizes in pixels of the reference (target) frame, contrasts as a share of the
      slice's reference maximum (the study's max(RSS) of the image the feature goes into);
    * positions drawn uniformly at random (seeded) among those whose scoring window (the feature's
      bounding box grown by ``margin`` pixels) lies fully inside the image and where the reference is
      at least ``min_intensity`` of its maximum, i.e. inside the object; windows of different features
      are separated by at least one pixel, so no feature leaks into another's window. Features are
      placed largest window first (the hardest to fit), each uniformly among the positions still free;
      if the earlier ones leave no room the whole placement is redrawn (up to 100 times), and a
      placement that cannot be found raises ``ValueError``;
    * insertion: the intensity map f (target frame) is zero-padded to the k-space grid at the
      centre-crop position (readout oversampling included) and given the phase of the coil-combined
      image x = S^H F^H y, so that the magnitude rises by f where the object is; the k-space becomes
      y + F S (f e^{i angle x}). With maps that satisfy sum_c |S_c|^2 = 1 and coil images consistent with
      them, the new RSS reference is exactly the old one plus f; on real data (noise, imperfect maps) it
      is close to it, and the new reference is always recomputed from the new k-space;
    * metrics, per feature (:func:`feature_metrics`): the footprint MSE, the MSE over the window and a
      contrast recovery (feature minus its surroundings, reconstruction over reference), on images divided
      by the featured reference's maximum, one scale for every method; the study's scaling (each image to
      mean 0 and std 1 over the whole image) made a method's error depend on its own background, so it is
      kept only as a second, labelled column ``mse_feature_meanstd``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .fastmri_io import center_crop
from .physics import MultiCoilOperator, as_complex_tensor, fft2c, ifft2c, rss
from .specs import SHAPES, FeatureSpec  # noqa: F401 (re-exported)

#: Full re-draws of a slice's placement before giving up (when the first features leave no room).
PLACEMENT_ATTEMPTS = 100


@dataclass(frozen=True)
class Feature:
    """One inserted feature; (row, col) is the top-left corner of its bounding box in the target frame."""

    index: int
    shape: str
    size: int
    contrast: float
    row: int
    col: int

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"feature shape {self.shape!r} is not one of {list(SHAPES)}")
        if int(self.size) < 1:
            raise ValueError(f"feature size {self.size!r} is not positive")
        # plain Python numbers, so that dataclasses.asdict(feature) goes to JSON as is
        for name, kind in (("index", int), ("size", int), ("contrast", float), ("row", int), ("col", int)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(r0, r1, c0, c1) of the bounding box, half-open."""
        return self.row, self.row + self.size, self.col, self.col + self.size

    def window(self, margin: int, shape_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(r0, r1, c0, c1) of the bounding box grown by ``margin`` on each side, clipped to the image."""
        r0, r1, c0, c1 = self.box
        h, w = shape_hw
        return max(r0 - margin, 0), min(r1 + margin, h), max(c0 - margin, 0), min(c1 + margin, w)

    def footprint(self) -> np.ndarray:
        """Bool [size, size]: the feature's pixels inside its bounding box."""
        if self.shape == "square":
            return np.ones((self.size, self.size), dtype=bool)
        centres = np.arange(self.size) + 0.5 - self.size / 2
        radius2 = centres[:, None] ** 2 + centres[None, :] ** 2
        return radius2 <= (self.size / 2) ** 2 + 1e-9


def _free_positions(blocked: np.ndarray, extent: int) -> np.ndarray:
    """Bool [h-extent+1, w-extent+1]: top-left corners of extent x extent windows with no blocked pixel."""
    h, w = blocked.shape
    if extent > h or extent > w:
        return np.zeros((0, 0), dtype=bool)
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = blocked.astype(np.int64).cumsum(0).cumsum(1)
    count = (integral[extent:, extent:] - integral[:-extent, extent:]
             - integral[extent:, :-extent] + integral[:-extent, :-extent])
    return count == 0


def place_features(
    target: np.ndarray, spec: FeatureSpec, rng: np.random.Generator, attempts: int = PLACEMENT_ATTEMPTS
) -> list[Feature]:
    """One feature per (shape, size, contrast) of ``spec`` at random positions inside the object of ``target``.

    Each feature's window (box grown by ``spec.margin``) lies fully inside the image, where
    ``target >= spec.min_intensity * target.max()``, and at least one pixel away from every other window.
    Features are placed largest first, each uniformly among the positions still valid (the occupied ones
    are blocked, so no draw is wasted); when a feature finds no room left, the whole placement is drawn
    again, up to ``attempts`` times. Raises ValueError if a feature does not fit even alone, or no
    attempt fits them all.
    """
    target = np.asarray(target)
    if target.ndim != 2:
        raise ValueError(f"target must be a 2-D image, got shape {target.shape}")
    if not np.all(np.isfinite(target)):
        raise ValueError("target has non-finite values")
    peak = float(target.max())
    if peak <= 0:
        raise ValueError("target has no positive intensity to place features in")
    outside = target < spec.min_intensity * peak
    combos = spec.combinations()
    order = sorted(range(len(combos)), key=lambda i: -combos[i][1])  # stable: largest first
    m = spec.margin
    for _ in range(max(int(attempts), 1)):
        occupied = np.zeros_like(outside)
        placed: dict[int, Feature] = {}
        for i in order:
            shape, size, contrast = combos[i]
            extent = size + 2 * m
            rows, cols = np.nonzero(_free_positions(outside | occupied, extent))
            if rows.size == 0:
                if not placed:
                    raise ValueError(
                        f"cannot place feature {i} ({shape}, size {size}): no {extent}x{extent} window "
                        f"(size + 2*margin {m}) lies fully where the target is >= {spec.min_intensity:g} of its "
                        f"maximum in the {target.shape[0]}x{target.shape[1]} image (object too small)"
                    )
                break
            k = int(rng.integers(rows.size))
            wr, wc = int(rows[k]), int(cols[k])  # window's top-left corner
            placed[i] = Feature(index=i, shape=shape, size=size, contrast=contrast, row=wr + m, col=wc + m)
            # block the window grown by one pixel: the next windows keep a gap of >= 1 pixel
            occupied[max(wr - 1, 0) : wr + extent + 1, max(wc - 1, 0) : wc + extent + 1] = True
        else:
            return [placed[i] for i in range(len(combos))]
    raise ValueError(
        f"cannot place all {len(combos)} features (sizes {list(spec.sizes)}, margin {m}) without overlapping "
        f"windows in the object of the {target.shape[0]}x{target.shape[1]} image after {attempts} attempts "
        f"(too many or too large features for the object)"
    )


def feature_map(features: list[Feature], shape: tuple[int, int], maxval: float) -> np.ndarray:
    """Real float32 [h, w]: ``contrast * maxval`` on each feature's footprint, 0 elsewhere."""
    h, w = shape
    out = np.zeros((h, w), dtype=np.float32)
    for f in features:
        r0, r1, c0, c1 = f.box
        if r0 < 0 or c0 < 0 or r1 > h or c1 > w:
            raise ValueError(f"feature {f.index} with box {f.box} lies outside the {h}x{w} image")
        region = out[r0:r1, c0:c1]
        region[f.footprint()] = f.contrast * maxval
    return out


def _embed(image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Zero-pad [h, w] to ``grid`` at the centre-crop position (the inverse of ``center_crop``)."""
    h, w = image.shape
    H, W = grid
    if h > H or w > W:
        raise ValueError(f"target shape {(h, w)} is larger than the k-space grid {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    out = np.zeros((H, W), dtype=image.dtype)
    out[top : top + h, left : left + w] = image
    return out


def insert_features(
    kspace: np.ndarray, sens: np.ndarray, features: list[Feature], target_shape, maxval: float
) -> tuple[np.ndarray, np.ndarray]:
    """The slice's full k-space [C, H, W] and reference [h, w] with ``features`` added.

    delta = f · exp(i·angle(S^H F^H y)) with f the :func:`feature_map` zero-padded to [H, W];
    new k-space = y + F(S · delta) (same noise, same maps); new reference = centre-cropped RSS of the new
    k-space. Returns (complex64 [C, H, W], float32 [h, w]).
    """
    kspace, sens = np.asarray(kspace), np.asarray(sens)
    if kspace.ndim != 3:
        raise ValueError(f"kspace must be [coils, H, W], got shape {kspace.shape}")
    if sens.shape != kspace.shape:
        raise ValueError(f"sensitivity maps {sens.shape} do not match the k-space {kspace.shape}")
    target_shape = tuple(int(s) for s in target_shape)
    f = _embed(feature_map(features, target_shape, maxval), kspace.shape[-2:])
    with torch.no_grad():
        y = as_complex_tensor(kspace)
        op = MultiCoilOperator(np.ones(kspace.shape[-1], np.float32), as_complex_tensor(sens))
        x = op.combine(ifft2c(y))
        magnitude = x.abs()
        phase = torch.where(magnitude > 0, x / torch.where(magnitude > 0, magnitude, 1), 1)
        delta = torch.as_tensor(f) * phase
        new_kspace = y + fft2c(op.expand(delta))
        new_target = center_crop(rss(ifft2c(new_kspace)), target_shape)
    return new_kspace.numpy().astype(np.complex64), new_target.numpy().astype(np.float32)


def normalise(image: np.ndarray) -> np.ndarray:
    """(image - mean) / std over the whole image, float64 (the study's scaling before its MSE)."""
    image = np.asarray(image, dtype=np.float64)
    std = image.std()
    if not np.isfinite(std) or std == 0:
        raise ValueError(f"cannot normalise an image with standard deviation {std}")
    return (image - image.mean()) / std


def _scaled_pair(target: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, ...]:
    """(reference, reconstruction) divided by the reference's max, then each scaled to mean 0, std 1 (the
    study's), float64; a complex reconstruction is reduced to its magnitude first."""
    target, recon = np.asarray(target), np.asarray(recon)
    if np.iscomplexobj(recon):
        recon = np.abs(recon)
    if target.ndim != 2 or recon.shape != target.shape:
        raise ValueError(f"reconstruction {recon.shape} and target {target.shape} must be 2-D of the same shape")
    scale = float(np.max(target))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"the reference has maximum {scale}; expected a positive number")
    ref, rec = np.asarray(target, np.float64) / scale, np.asarray(recon, np.float64) / scale
    return ref, rec, normalise(target), normalise(recon)


def feature_metrics(target: np.ndarray, recon: np.ndarray, features: list[Feature], margin: int) -> list[dict]:
    """Recovery of each feature by a reconstruction, both images divided by the featured reference's max.

    target: the featured reference [h, w]; recon: the reconstruction's magnitude [h, w] (complex input is
    reduced to its magnitude). Per feature: its fields, ``mse_feature`` (over the footprint),
    ``mse_window`` (over the box grown by ``margin``, clipped), ``contrast_recovery`` (footprint mean minus
    the mean of the rest of the window, recon over target: 1 = full contrast, 0 = gone; NaN when the window
    has no pixel outside the footprint or the target shows no contrast) and ``mse_feature_meanstd`` (the
    study's: footprint MSE after scaling each image to mean 0, std 1).
    """
    if margin < 0:
        raise ValueError(f"margin {margin} must be >= 0")
    ref, rec, study_ref, study_rec = _scaled_pair(target, recon)
    rows = []
    for f in features:
        r0, r1, c0, c1 = f.window(margin, ref.shape)
        inside = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        br0, bc0 = f.row - r0, f.col - c0
        if br0 < 0 or bc0 < 0 or br0 + f.size > inside.shape[0] or bc0 + f.size > inside.shape[1]:
            raise ValueError(f"feature {f.index} with box {f.box} lies outside the {ref.shape} image")
        inside[br0 : br0 + f.size, bc0 : bc0 + f.size] = f.footprint()
        a, b = ref[r0:r1, c0:c1], rec[r0:r1, c0:c1]
        err = (b - a) ** 2
        study_err = (study_rec[r0:r1, c0:c1] - study_ref[r0:r1, c0:c1]) ** 2
        ring = ~inside
        if ring.any():
            ref_contrast = a[inside].mean() - a[ring].mean()
            rec_contrast = b[inside].mean() - b[ring].mean()
            recovery = rec_contrast / ref_contrast if ref_contrast != 0 else float("nan")
        else:
            recovery = float("nan")
        rows.append({
            "index": f.index, "shape": f.shape, "size": f.size, "contrast": f.contrast, "row": f.row, "col": f.col,
            "mse_feature": float(err[inside].mean()),
            "mse_window": float(err.mean()),
            "contrast_recovery": float(recovery),
            "mse_feature_meanstd": float(study_err[inside].mean()),
        })
    return rows


def box_metrics(target: np.ndarray, recon: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[dict]:
    """Recovery of annotated regions (pathology boxes, rows r0:r1 and columns c0:c1 of the reference frame),
    scaled as the synthetic features are (:func:`feature_metrics`): per box ``mse_box`` (MSE inside the box of
    both images divided by the reference's max) and ``mse_box_meanstd`` (the study's: after scaling each whole
    image to mean 0, std 1)."""
    ref, rec, study_ref, study_rec = _scaled_pair(target, recon)
    rows = []
    for r0, r1, c0, c1 in boxes:
        if not (0 <= r0 < r1 <= ref.shape[0] and 0 <= c0 < c1 <= ref.shape[1]):
            raise ValueError(f"box rows {r0}:{r1}, columns {c0}:{c1} do not lie inside the {ref.shape} image")
        box = (slice(r0, r1), slice(c0, c1))
        rows.append({"mse_box": float(((rec[box] - ref[box]) ** 2).mean()),
                     "mse_box_meanstd": float(((study_rec[box] - study_ref[box]) ** 2).mean())})
    return rows
