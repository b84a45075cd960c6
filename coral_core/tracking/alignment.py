"""Where the first visit's pixels lie in the second visit's image.

An :class:`Alignment` is a 3x3 projective matrix from the first ("before") image's pixel
coordinates to the second ("after") image's, in OpenCV's convention: the centre of pixel
``(row i, column j)`` is the point ``(x=j, y=i)``. It comes from

* two geotransforms (:func:`align_geotransforms`): orthomosaics of a plot georeferenced in
  one CRS; a residual shift between them (GPS drift) can be measured on the images
  (:func:`refine_shift`);
* matched features of two photos (:func:`align_photos`): SIFT keypoints matched with Lowe's
  ratio test, a homography fitted by RANSAC. Its quality is the number of inlier matches
  and their root-mean-square reprojection error in pixels of the second photo. Photos that
  do not show the same reef are refused with a sentence (too few inliers, or a fitted
  homography that folds, collapses or leaves almost no overlap);
* :func:`identity_alignment`: masks already in one pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from coral_core.formats.raster_io import GeoInfo

# Photos are matched at this size at most (longest side, pixels): SIFT at full size of a
# 20-megapixel quadrat costs seconds and gains nothing over a 1,600-pixel copy.
MATCH_SIDE = 1600
# SIFT keypoints kept per photo (the strongest): 3,000 align EilatMixx photos within a tenth
# of a pixel; more cost time and gain nothing.
FEATURES = 3000
# Lowe's ratio test: a match is kept when its best distance is below this share of the
# second best.
RATIO = 0.75
# RANSAC inlier threshold in pixels of the matched (downscaled) photos.
RANSAC_PX = 3.0
# Fewer inliers than this and two photos are taken not to overlap.
MIN_INLIERS = 25
# The before photo, carried into the after photo, must cover at least this share of it.
MIN_OVERLAP = 0.1
# Phase correlation peaks lower than this (of 1 for identical images) are not trusted.
MIN_PEAK = 0.05


@dataclass(frozen=True, eq=False)
class Alignment:
    """A transform from the before image's pixels to the after image's.

    Attributes:
        matrix: ``(3, 3)`` float64 homography, pixel centres at integer coordinates.
        method: ``"features"``, ``"geotransform"`` or ``"identity"``.
        inliers: matches the homography explains (features only, else None).
        matches: matches that passed the ratio test (features only, else None).
        reprojection_error_px: RMS distance between the inliers' positions in the after
            photo and where the homography puts them, after-photo pixels (features only).
        residual_shift: ``(dx, dy)`` after-image pixels added by :func:`refine_shift`.
        overlap: share of the after image the before image covers once aligned.
    """

    matrix: np.ndarray
    method: str
    inliers: int | None = None
    matches: int | None = None
    reprojection_error_px: float | None = None
    residual_shift: tuple[float, float] = (0.0, 0.0)
    overlap: float | None = None

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """``(K, 2)`` before-image ``(x, y)`` -> ``(K, 2)`` float64 after-image ``(x, y)``."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        mapped = np.hstack([points, np.ones((len(points), 1))]) @ self.matrix.T
        return mapped[:, :2] / mapped[:, 2:3]

    def describe(self) -> str:
        """One line for a log: the method and its quality figures."""
        if self.method != "features":
            text = self.method
        else:
            text = (
                f"features: {self.inliers} inliers of {self.matches} matches, reprojection "
                f"error {self.reprojection_error_px:.2f} px"
            )
        if self.residual_shift != (0.0, 0.0):
            text += ", residual shift {:+.1f}, {:+.1f} px".format(*self.residual_shift)
        return text


def identity_alignment() -> Alignment:
    """Both visits' masks are in one pixel grid already."""
    return Alignment(np.eye(3), "identity")


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _geo_matrix(geo: GeoInfo) -> np.ndarray:
    x0, a, b, y0, d, e = geo.geotransform
    return np.array([[a, b, x0], [d, e, y0], [0.0, 0.0, 1.0]])


def align_geotransforms(before: GeoInfo, after: GeoInfo) -> Alignment:
    """The alignment of two georeferenced rasters of one plot (same CRS).

    Raises:
        ValueError: the CRSs differ, or a geotransform is singular.
    """
    if before.crs and after.crs and before.crs != after.crs:
        raise ValueError(
            f"the two visits are in different coordinate systems ({before.crs} and "
            f"{after.crs}); reproject one of them (gdalwarp -t_srs) first"
        )
    after_geo = _geo_matrix(after)
    if abs(np.linalg.det(after_geo)) < 1e-30 or abs(np.linalg.det(_geo_matrix(before))) < 1e-30:
        raise ValueError("a geotransform is singular (zero pixel size); check the raster")
    # GDAL's geotransform maps pixel corners; OpenCV's coordinates are pixel centres.
    matrix = _translation(-0.5, -0.5) @ np.linalg.inv(after_geo) @ _geo_matrix(before)
    matrix = matrix @ _translation(0.5, 0.5)
    return Alignment(matrix / matrix[2, 2], "geotransform")


def _gray(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """A contrast-equalised grey copy at most ``side`` pixels long, and its scale."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    if image.dtype != np.uint8:
        raise ValueError(f"photos to align must be uint8, got {image.dtype}")
    scale = min(1.0, side / max(image.shape[:2]))
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # Local equalisation takes out most of a change of light between the two visits.
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    return clahe.apply(image), scale


def _scaling(scale: float) -> np.ndarray:
    """Pixel centres of an image to those of its copy resized by ``scale``."""
    return _translation(-0.5, -0.5) @ np.diag([scale, scale, 1.0]) @ _translation(0.5, 0.5)


def _no_overlap(reason: str) -> ValueError:
    return ValueError(
        f"the two photos do not overlap ({reason}); check that they show the same plot "
        "and pair them again"
    )


def align_photos(
    before: np.ndarray,
    after: np.ndarray,
    min_inliers: int = MIN_INLIERS,
    match_side: int = MATCH_SIDE,
) -> Alignment:
    """Register two photos of one quadrat by matched SIFT features and a RANSAC homography.

    Args:
        before, after: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) photos of the two visits.
        min_inliers: fewer inlier matches than this and the photos are refused.
        match_side: photos are matched at most this long (the result is for full size).

    Raises:
        ValueError: the photos do not overlap (a sentence saying why).
    """
    gray_before, scale_before = _gray(before, match_side)
    gray_after, scale_after = _gray(after, match_side)
    sift = cv2.SIFT_create(nfeatures=FEATURES)
    keys_before, desc_before = sift.detectAndCompute(gray_before, None)
    keys_after, desc_after = sift.detectAndCompute(gray_after, None)
    if desc_before is None or desc_after is None or min(len(keys_before), len(keys_after)) < 4:
        raise _no_overlap("one of them has almost no texture to match")
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_before, desc_after, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < min_inliers:
        raise _no_overlap(f"only {len(good)} features match, {min_inliers} are needed")
    source = np.float32([keys_before[m.queryIdx].pt for m in good])
    target = np.float32([keys_after[m.trainIdx].pt for m in good])
    homography, inlier_flags = cv2.findHomography(
        source, target, cv2.RANSAC, RANSAC_PX, maxIters=5000, confidence=0.999
    )
    inliers = int(inlier_flags.sum()) if inlier_flags is not None else 0
    if homography is None or inliers < min_inliers:
        raise _no_overlap(
            f"only {inliers} of {len(good)} matching features agree on one view, "
            f"{min_inliers} are needed"
        )
    matrix = np.linalg.inv(_scaling(scale_after)) @ homography @ _scaling(scale_before)
    matrix /= matrix[2, 2]
    kept = inlier_flags.ravel().astype(bool)
    full_source = (source[kept] + 0.5) / scale_before - 0.5
    full_target = (target[kept] + 0.5) / scale_after - 0.5
    error = Alignment(matrix, "features").map_points(full_source) - full_target
    rms = float(np.sqrt((error**2).sum(axis=1).mean()))
    overlap = footprint_overlap(matrix, before.shape[:2], after.shape[:2])
    if overlap is None:
        raise _no_overlap("the fitted view folds or collapses")
    if overlap < MIN_OVERLAP:
        raise _no_overlap(f"the fitted view covers {100 * overlap:.0f}% of the second photo")
    return Alignment(matrix, "features", inliers, len(good), rms, overlap=overlap)


def footprint_overlap(
    matrix: np.ndarray, before_shape: tuple[int, int], after_shape: tuple[int, int]
) -> float | None:
    """Share of the after image covered by the before image carried into it, or None when
    the transform folds the before image (corners out of order) or sends it to infinity."""
    height, width = before_shape
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5],
                        [-0.5, height - 0.5]])  # fmt: skip
    homogeneous = np.hstack([corners, np.ones((4, 1))]) @ np.asarray(matrix).T
    if (homogeneous[:, 2] <= 1e-9).any():
        return None
    mapped = homogeneous[:, :2] / homogeneous[:, 2:3]
    edges = np.roll(mapped, -1, axis=0) - mapped
    turns = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, 0)[:, 0]
    )
    if not ((turns > 0).all() or (turns < 0).all()):
        return None
    after_h, after_w = after_shape
    frame = np.array([[-0.5, -0.5], [after_w - 0.5, -0.5], [after_w - 0.5, after_h - 0.5],
                      [-0.5, after_h - 0.5]], dtype=np.float32)  # fmt: skip
    area, _ = cv2.intersectConvexConvex(mapped.astype(np.float32), frame)
    return float(area) / float(after_w * after_h)


def refine_shift(
    alignment: Alignment, before: np.ndarray, after: np.ndarray, max_shift: float = 50.0
) -> Alignment:
    """The alignment plus the residual shift phase correlation measures between the after
    image and the before image carried into it (GPS drift between two orthomosaics).

    Args:
        before, after: ``(H, W)`` or ``(H, W, 3)`` images of the two visits (photos, or
            label masks as uint8); the same kind for both.
        max_shift: a larger measured shift (after-image pixels) is taken as a failure of
            the measurement and not applied.
    """
    after_gray = _as_float_gray(after)
    height, width = after_gray.shape
    warped = cv2.warpPerspective(
        _as_float_gray(before), alignment.matrix, (width, height), flags=cv2.INTER_LINEAR
    )
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(warped, after_gray, window)
    # A weak correlation peak is no measurement (e.g. two images with nothing in common).
    if response < MIN_PEAK or not np.isfinite([dx, dy]).all() or np.hypot(dx, dy) > max_shift:
        return alignment
    matrix = _translation(dx, dy) @ alignment.matrix
    return Alignment(
        matrix / matrix[2, 2],
        alignment.method,
        alignment.inliers,
        alignment.matches,
        alignment.reprojection_error_px,
        (float(dx), float(dy)),
        alignment.overlap,
    )


def _as_float_gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32)
