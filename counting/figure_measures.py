"""What thesis Figures 2.3-2.7 show, as numbers: one set of measures for our maps and the thesis's.

Regions of an image (from its shape pixels alone, so the thesis's figure files are measured with
the same code as our networks; shapes never touch, so connected components are shapes):
- edge band: pixels within `band` px (chessboard distance) of the other class, both sides;
- corners: edge-band pixels whose (2 band + 3)^2 window is at most 3/8 shape (a straight edge
  is about 1/2; a square's corner 1/4, a triangle's sharper);
- interior: shape pixels outside the band; background: the rest.
For a saliency map s each region gets mean(s | region) / mean(s | background) and its share
sum(s | region) / sum(s).

Selected pixel sets (Figure 2.4, 2.6, 2.7): size as a fraction of the image; how much of its
shape (the one nearest most of its pixels) and of that shape's outline (edge band) the set
covers; the shares of the set on shapes, in the edge band, and between shapes (background
pixels with two different shapes within one median shape side); size by step.

The pixel-count shortcut (thesis 2.2.3): how well the total shape area predicts the count, and
a network's signed count error on images whose shapes all take the smallest or largest scale.
"""
import numpy as np
from scipy import ndimage

REGIONS = ('edge', 'corners', 'interior', 'background')
CORNER_FRACTION = 3 / 8


def invert_picture(picture, power=0.1):
    """s / max from a saliency picture round((s / max) ** power * 255): (p / 255) ** (1 / power)."""
    return (np.asarray(picture, dtype=np.float64) / 255.0) ** (1.0 / power)


def shape_mask(image):
    """Shape pixels of an (H, W, 3) or (3, H, W) uint8 image on a black background."""
    image = np.asarray(image)
    axis = 0 if image.shape[0] == 3 and image.shape[-1] != 3 else -1
    return image.max(axis=axis) > 0


def regions(on_shape, band):
    """Boolean masks {edge, corners, interior, background} of a shape mask (see module doc)."""
    if band < 1:
        raise ValueError('the edge band must be at least 1 px, got %r' % (band,))
    square = np.ones((2 * band + 1, 2 * band + 1), dtype=bool)
    near_off = ndimage.binary_dilation(~on_shape, square, border_value=0)
    near_on = ndimage.binary_dilation(on_shape, square, border_value=0)
    edge_band = (on_shape & near_off) | (~on_shape & near_on)
    window = 2 * band + 3
    fraction = ndimage.uniform_filter(on_shape.astype(np.float64), window, mode='constant')
    corners = edge_band & (fraction <= CORNER_FRACTION)
    return {'edge': edge_band & ~corners, 'corners': corners,
            'interior': on_shape & ~edge_band, 'background': ~on_shape & ~edge_band}


def where_saliency_lies(saliency, on_shape, band, valid=None):
    """Per region: mean relative to the background's mean, and share of the total saliency.

    `valid` (optional boolean map) leaves out pixels the network cannot see (ConvolutionalLarge
    at 1000 px: rows and columns 997-999)."""
    valid = np.ones(saliency.shape, dtype=bool) if valid is None else valid
    parts = regions(on_shape, band)
    total = float(saliency[valid].sum())
    background = float(saliency[parts['background'] & valid].mean())
    out = {}
    for name in REGIONS:
        values = saliency[parts[name] & valid]
        mean = float(values.mean()) if values.size else float('nan')
        out[name] = {'relative_to_background': mean / background if background > 0 else None,
                     'share': float(values.sum()) / total if total > 0 else None,
                     'pixels': int(values.size)}
    return out


def label_shapes(on_shape):
    """(labels, n): connected components (8-connected) of the shape pixels, 1..n."""
    return ndimage.label(on_shape, structure=np.ones((3, 3), dtype=int))


def between_shapes(labels, radius):
    """Background pixels with pixels of two or more different shapes within `radius`
    (chessboard): the largest and smallest shape label in the window differ."""
    size = 2 * radius + 1
    highest = ndimage.maximum_filter(labels, size=size, mode='constant', cval=0)
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, np.iinfo(labels.dtype).max),
                                    size=size, mode='constant', cval=np.iinfo(labels.dtype).max)
    return (labels == 0) & (highest > 0) & (lowest < highest)


def median_side(labels, n_shapes):
    """Square root of the median shape area, in pixels (at least 1)."""
    if n_shapes == 0:
        return 1
    areas = np.bincount(labels.ravel(), minlength=n_shapes + 1)[1:]
    return max(1, int(round(float(np.sqrt(np.median(areas))))))


def nearest_shape(labels):
    """Label of the nearest shape pixel (Euclidean) for every pixel; shapes keep their own."""
    if not (labels > 0).any():
        return np.zeros_like(labels)
    _, (rows, cols) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    return labels[rows, cols]


def selected_sets(masks, on_shape=None, band=1):
    """Measures of the pixel sets of successive localisation steps, in step order.

    Every set has `fraction` (of the image). With `on_shape`, each set belongs to the shape
    nearest to most of its pixels, and gets: `on_shape` and `in_band` (shares of the set on a
    shape and in the edge band), `shape_covered` (share of that shape's pixels in the set),
    `outline_covered` (share of that shape's edge band in the set) and `between` (share of the
    set between two shapes, within one median shape side of both)."""
    rows = []
    if on_shape is not None:
        labels, n = label_shapes(on_shape)
        between = between_shapes(labels, median_side(labels, n))
        nearest = nearest_shape(labels)
        parts = regions(on_shape, band)
        edge_band = parts['edge'] | parts['corners']
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        rings = np.bincount(nearest[edge_band], minlength=n + 1)
    for mask in masks:
        size = int(mask.sum())
        row = {'pixels': size, 'fraction': size / float(mask.size)}
        if on_shape is not None:
            hit = np.bincount(nearest[mask], minlength=n + 1)[1:]
            main = int(hit.argmax()) + 1 if size and n else 0

            def share(part):
                return float((mask & part).sum()) / size if size else None
            row.update({
                'on_shape': share(on_shape), 'in_band': share(edge_band),
                'between': share(between),
                'shape_covered': float((mask & (labels == main)).sum()) / areas[main]
                if main else 0.0,
                'outline_covered': float((mask & edge_band & (nearest == main)).sum())
                / rings[main] if main else 0.0,
            })
        rows.append(row)
    return rows


def pixel_count_fit(areas, counts):
    """How well total shape area predicts the total count: least squares count ~ a + b area.

    Returns R^2 and the fit's mean absolute error (in shapes)."""
    areas = np.asarray(areas, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    design = np.stack([np.ones_like(areas), areas], axis=1)
    coef, *_ = np.linalg.lstsq(design, counts, rcond=None)
    fit = design @ coef
    spread = float(((counts - counts.mean()) ** 2).sum())
    r2 = 1.0 - float(((counts - fit) ** 2).sum()) / spread if spread > 0 else None
    return {'r2': r2, 'mae': float(np.abs(counts - fit).mean()), 'images': int(len(counts))}


def size_bias(predicted, truth):
    """Mean signed and absolute count error (summed over types) of predictions."""
    err = np.asarray(predicted, dtype=np.float64).sum(axis=1) - \
        np.asarray(truth, dtype=np.float64).sum(axis=1)
    return {'mean_signed_error': float(err.mean()), 'mae': float(np.abs(err).mean()),
            'images': int(len(err))}
