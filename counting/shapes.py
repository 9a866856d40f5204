"""Random shape images: templates, placement without overlap, drawing (thesis 2.2 sampler).

Everything about one image is drawn from its own generator, seeded by (seed, image index), so a
dataset is identical whatever the number of workers.
"""
import itertools
import math

import numpy as np
import shapely
from PIL import Image, ImageDraw

# Unit templates; rotation is about the template's bounding-box centre.
TEMPLATES = {
    'tri': np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    'sq': np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
}


class PlacementError(Exception):
    """Shapes could not be placed under the requested settings."""


def count_choices(shape_types, shape_limit):
    """Every count tuple (one entry per type) whose sum is <= shape_limit, in a fixed order."""
    ranges = [range(shape_limit + 1)] * len(shape_types)
    return [c for c in itertools.product(*ranges) if sum(c) <= shape_limit]


def transform(template, rotation, scale, offset):
    """Rotate by `rotation` degrees about the bounding-box centre, scale, then translate."""
    centre = (template.min(axis=0) + template.max(axis=0)) / 2.0
    theta = math.radians(rotation)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return ((template - centre) @ rot.T + centre) * scale + np.asarray(offset, dtype=float)


def check_feasible(settings, shape_limit):
    """Raise PlacementError for settings that can never be satisfied (cheap, before sampling)."""
    width, height = settings['image_width'], settings['image_height']
    lo = settings['scale_bounds'][0]   # also the fixed scale when scaling is off
    for kind in settings['shape_types']:
        # Smallest extent over rotations is at least the template's own width at 0 degrees.
        if lo > width - 1 or lo > height - 1:
            raise PlacementError(
                'a %s of scale %d cannot fit in a %dx%d image; lower --scale-bounds or enlarge '
                'the image' % (kind, lo, width, height))
    smallest = min(0.5 if k == 'tri' else 1.0 for k in settings['shape_types']) * lo * lo
    if shape_limit * smallest > width * height:
        raise PlacementError(
            '%d shapes of scale %d cover more than a %dx%d image; use fewer shapes, smaller '
            'scales or a larger image' % (shape_limit, lo, width, height))


def sample_shapes(rng, settings, counts):
    """Place shapes for one image. Returns a list of dicts: type, polygon, scale, rotation.

    `counts` maps type -> number. Only the position is re-drawn when a placement falls outside
    the image or meets (touching counts) an earlier shape; after settings['placement_attempts']
    re-draws for one shape a PlacementError is raised instead of looping forever.
    """
    width, height = settings['image_width'], settings['image_height']
    lo, hi = settings['scale_bounds']
    kinds = [k for k in settings['shape_types'] for _ in range(counts[k])]
    rng.shuffle(kinds)
    image_scale = int(rng.integers(lo, hi + 1))
    placed, polygons = [], []
    for kind in kinds:
        rotation = int(rng.integers(0, 360)) if settings['shape_rotations'] else 0
        if not settings['shape_scaling']:
            scale = lo
        elif settings['limit_scale_resampling']:
            scale = image_scale
        else:
            scale = int(rng.integers(lo, hi + 1))
        shape = transform(TEMPLATES[kind], rotation, scale, (0, 0))
        for _ in range(settings['placement_attempts']):
            offset = (int(rng.integers(0, width + 1)), int(rng.integers(0, height + 1)))
            points = shape + offset
            # Pixel centres run 0..W-1, so a shape inside the image stays within that box.
            if points.min() < 0 or points[:, 0].max() > width - 1 or points[:, 1].max() > height - 1:
                continue
            polygon = shapely.Polygon(points)
            if any(polygon.intersects(other) for other in polygons):
                continue
            polygons.append(polygon)
            placed.append({'type': kind, 'polygon': np.round(points, 4).tolist(),
                           'scale': scale, 'rotation': rotation})
            break
        else:
            raise PlacementError(
                'could not place shape %d of %d (%s, scale %d) in a %dx%d image after %d '
                'attempts; use fewer shapes, smaller scales or a larger image'
                % (len(placed) + 1, len(kinds), kind, scale, width, height,
                   settings['placement_attempts']))
    return placed


def draw(shapes, width, height, color):
    """RGB uint8 image: black background, each polygon filled and outlined in `color`."""
    image = Image.new('RGB', (width, height), (0, 0, 0))
    pen = ImageDraw.Draw(image)
    for shape in shapes:
        pen.polygon([tuple(p) for p in shape['polygon']], fill=tuple(color), outline=tuple(color))
    return image


def label_map(shapes, width, height):
    """int32 map: 0 for background, k + 1 on the pixels drawn for shape k (same rasteriser)."""
    image = Image.new('I', (width, height), 0)
    pen = ImageDraw.Draw(image)
    for k, shape in enumerate(shapes):
        pen.polygon([tuple(p) for p in shape['polygon']], fill=k + 1, outline=k + 1)
    return np.asarray(image, dtype=np.int32)


def sample_image(seed, index, settings, choices):
    """Counts, shapes and picture of image `index`, from a generator seeded by (seed, index)."""
    rng = np.random.default_rng([seed, index])
    pick = choices[int(rng.integers(0, len(choices)))]
    counts = dict(zip(settings['shape_types'], pick))
    shapes = sample_shapes(rng, settings, counts)
    return counts, shapes, draw(shapes, settings['image_width'], settings['image_height'],
                                settings['shape_color'])
