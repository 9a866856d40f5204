"""Does the count localise? Ways to turn a counting network's output into pixel sets, one interface.

    masks = localise(name, model, settings, image_u8, rng, **options)   # boolean (H, W) masks
    sets = localise_sets(name, ...)   # dicts seed (row, col), mask, box: what
                                      # counting/localisation_metrics.py scores

At most n = round(sum of predicted counts) sets (per type for `per_type`), derivatives with
respect to the stored 0..255 pixels (the network sees image * settings['input_scale']).
Every method is deterministic given `rng` (numpy Generator; only smoothgrad and chance draw).

Second-derivative localisation (thesis 2.2.2, counting/saliency.py's loop):
- thesis: the thesis's rule, importance >= 5e-10 (defaults.DETECT['threshold']);
- thesis_calibrated: the same rule at `threshold`, chosen per network by `calibrate` from
  defaults.DETECT['sweep_thresholds'] (best pooled box F1 on images that are then not scored);
- kmeans_medium: 3-means on log10 importance, keep the medium group (thesis 2.2.3's proposal);
- capped_seeding: "threshold the first derivative saliency from above" (thesis 2.2.3): pixels
  above the `cap_quantile` (0.99) quantile of the saliency never seed; sets as thesis_calibrated
  (its own calibrated threshold);
- per_type: the loop on the saliency of one type's count output at a time (the single-type
  saliency thesis 2.2.1 suggests), round(count of that type) sets each; calibrated threshold.

Attribution maps turned into detections (`map_sets`): keep the top k pixels of the map, k =
n x the expected area of one shape (the preset's sampler: mean over types of the template area,
tri 1/2 and sq 1, times the mean squared scale over its integer scale range; so about the share
of the image the predicted count of shapes would cover), only pixels with a positive value;
8-connected components of those; the n largest are the sets, each seeded at its highest value.
- saliency: max over channels of |d count / d x| (Simonyan et al. 2014);
- smoothgrad: the saliency map averaged over 50 copies of the image with Gaussian noise of sd
  15 % of the input range (255), the defaults Smilkov et al. 2017 recommend (n = 50,
  sigma / (x_max - x_min) = 10-20 %); the noisy copies are not clipped;
- integrated_gradients: (x - x') times the mean gradient at x' + (k / m)(x - x'), k = 1..m,
  m = 50, black baseline x' = 0 (Sundararajan et al. 2017, right Riemann sum); map |sum over
  channels|;
- gradient_x_input: gradient times input, map |sum over channels|.
With a black background and black baseline, the last two are zero off the shapes by
construction: part of what they find comes from the image, not the network.

References:
- chance: the sets of `reference` (default saliency, or the given `sets`) each moved by a random
  offset that keeps its bounding box inside the image: same sizes and forms, random place;
- image_components: 8-connected components of the image's own non-black pixels (no gradient; the
  n largest when a network is given, all of them with model=None): an upper reference.
"""
import time

import chainer
import chainer.functions as F
import numpy as np
from scipy import ndimage

from counting import defaults, figure_measures as fm, saliency as sal
from counting import localisation_metrics as lm

SECOND_DERIVATIVE = ('thesis', 'thesis_calibrated', 'kmeans_medium', 'capped_seeding',
                     'per_type')
ATTRIBUTIONS = ('saliency', 'smoothgrad', 'integrated_gradients', 'gradient_x_input')
REFERENCES = ('chance', 'image_components')
METHODS = SECOND_DERIVATIVE + ATTRIBUTIONS + REFERENCES
CALIBRATED = ('thesis_calibrated', 'capped_seeding', 'per_type')   # take a `threshold`

CAP_QUANTILE = 0.99
SMOOTHGRAD = {'samples': 50, 'noise': 0.15, 'input_range': 255.0}
INTEGRATED_GRADIENTS = {'steps': 50, 'baseline': 0.0}
BATCH = 25   # images per forward/backward pass of the attribution methods
AREA_FACTOR = {'tri': 0.5, 'sq': 1.0}
CPU = chainer.get_device('@numpy')


class UnknownMethod(ValueError):
    """A method name that is not in METHODS."""


def check_methods(names):
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UnknownMethod('unknown method %r; choose from %s' % (unknown[0], ', '.join(METHODS)))
    return list(names)


# --- counts and gradients -----------------------------------------------------------------

def predicted_counts(model, settings, image_u8, device=CPU):
    """(types,) counts of one image, in test mode."""
    x = device.send(np.asarray(image_u8, dtype=np.float32)[None] *
                    np.float32(settings['input_scale']))
    with chainer.using_config('train', False), chainer.using_config('enable_backprop', False):
        return np.asarray(chainer.backend.CpuDevice().send(model(x).array[0]), dtype=np.float64)


def n_sets(counts):
    return max(0, int(round(float(np.sum(counts)))))


def gradients(model, images, input_scale, output=None, device=CPU):
    """d count / d x for a batch (N, 3, H, W) of stored-pixel images (float), each image's own
    count: the sum of outputs, or output `output`. Test mode, so the images do not interact."""
    out = []
    for s in range(0, len(images), BATCH):
        with chainer.using_config('train', False):
            x = chainer.Variable(device.send(np.asarray(images[s:s + BATCH], dtype=np.float32)))
            y = model(x * np.float32(input_scale))
            total = F.sum(y) if output is None else F.sum(y[:, output])
            grad, = chainer.grad([total], [x])
        out.append(np.zeros(x.shape, np.float32) if grad is None
                   else chainer.backend.CpuDevice().send(grad.array))
    return np.concatenate(out)


def saliency_map(model, settings, image, device=CPU):
    """max_c |d count / d x_c| (Simonyan et al. 2014), (H, W)."""
    g = gradients(model, np.asarray(image, np.float32)[None], settings['input_scale'],
                  device=device)[0]
    return np.abs(g).max(axis=0)


def smoothgrad_map(model, settings, image, rng, samples=SMOOTHGRAD['samples'],
                   noise=SMOOTHGRAD['noise'], input_range=SMOOTHGRAD['input_range'],
                   device=CPU):
    """Mean saliency map over `samples` noisy copies x + N(0, (noise * input_range)^2)
    (Smilkov et al. 2017). noise = 0 gives saliency_map."""
    image = np.asarray(image, np.float32)
    copies = image[None] + rng.normal(0.0, noise * input_range,
                                      (samples,) + image.shape).astype(np.float32)
    g = gradients(model, copies, settings['input_scale'], device=device)
    return np.abs(g).max(axis=1).mean(axis=0)


def integrated_gradients(model, settings, image, steps=INTEGRATED_GRADIENTS['steps'],
                         baseline=INTEGRATED_GRADIENTS['baseline'], device=CPU):
    """Per-channel (3, H, W) attributions (x - x') * mean_k grad(x' + k / m (x - x')), k = 1..m
    (Sundararajan et al. 2017). Their sum approaches count(x) - count(x') (completeness)."""
    image = np.asarray(image, np.float32)
    base = np.broadcast_to(np.float32(baseline), image.shape)
    alphas = np.arange(1, steps + 1, dtype=np.float32) / np.float32(steps)
    path = base[None] + alphas[:, None, None, None] * (image - base)[None]
    g = gradients(model, path, settings['input_scale'], device=device)
    return (image - base) * g.mean(axis=0)


def gradient_x_input(model, settings, image, device=CPU):
    """Per-channel (3, H, W) gradient times input."""
    image = np.asarray(image, np.float32)
    return image * gradients(model, image[None], settings['input_scale'], device=device)[0]


# --- maps to sets -------------------------------------------------------------------------

def expected_shape_area(settings):
    """Mean pixel area of one shape under the preset's sampler (see module docstring)."""
    spec = settings['dataset']
    lo, hi = spec['scale_bounds']
    mean_square = float(np.mean(np.arange(lo, hi + 1, dtype=np.float64) ** 2))
    return float(np.mean([AREA_FACTOR[t] for t in spec['shape_types']])) * mean_square


def as_set(mask, seed):
    return {'seed': (int(seed[0]), int(seed[1])), 'mask': mask, 'box': sal.bounding_box(mask)}


def map_sets(values, n, keep_pixels):
    """Sets from an attribution map: the top `keep_pixels` positive pixels (ties in raster
    order), their 8-connected components, the `n` largest (ties: first in raster order), each
    seeded at its highest value."""
    values = np.asarray(values, dtype=np.float64)
    keep = int(min(max(keep_pixels, 0), values.size))
    if n <= 0 or keep == 0:
        return []
    flat = values.ravel()
    order = np.argsort(-flat, kind='stable')[:keep]
    order = order[flat[order] > 0]
    chosen = np.zeros(values.size, dtype=bool)
    chosen[order] = True
    labels, count = ndimage.label(chosen.reshape(values.shape), structure=np.ones((3, 3), int))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    biggest = np.argsort(-sizes, kind='stable')[:n] + 1
    out = []
    for k in biggest:
        mask = labels == k
        seed = np.unravel_index(int(np.argmax(np.where(mask, values, -np.inf))), values.shape)
        out.append(as_set(mask, seed))
    return out


def place_at_random(sets, shape, rng):
    """Each set moved by a random offset that keeps its bounding box inside `shape`; the seed
    moves with it (clipped into the image)."""
    height, width = shape
    out = []
    for s in sets:
        mask = s['mask']
        if s['box'] is None:
            seed = (int(rng.integers(0, height)), int(rng.integers(0, width)))
            out.append(as_set(np.zeros(shape, bool), seed))
            continue
        x0, y0, x1, y1 = s['box']
        top = int(rng.integers(0, height - (y1 - y0)))
        left = int(rng.integers(0, width - (x1 - x0)))
        moved = np.zeros(shape, bool)
        moved[top:top + y1 - y0 + 1, left:left + x1 - x0 + 1] = mask[y0:y1 + 1, x0:x1 + 1]
        seed = (min(max(s['seed'][0] - y0 + top, 0), height - 1),
                min(max(s['seed'][1] - x0 + left, 0), width - 1))
        out.append(as_set(moved, seed))
    return out


def image_component_sets(image_u8, n=None):
    """The image's own shapes: 8-connected non-black components, the n largest (all when n is
    None), each seeded at its pixel nearest the component's centroid."""
    labels, count = fm.label_shapes(fm.shape_mask(image_u8))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-sizes, kind='stable') + 1
    out = []
    for k in order[:count if n is None else n]:
        mask = labels == k
        rows, cols = np.nonzero(mask)
        nearest = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
        out.append(as_set(mask, (rows[nearest], cols[nearest])))
    return out


# --- second-derivative localisation ---------------------------------------------------------

class OutputSaliencyGraph(sal.SaliencyGraph):
    """SaliencyGraph of one count output (index `output`) instead of the sum of outputs."""

    def __init__(self, model, image, device, input_scale, output):
        self.model = model
        with chainer.using_config('train', False):
            self.x = chainer.Variable(device.send(np.asarray(image, np.float32)[None]))
            self.outputs = model(self.x * np.float32(input_scale))
            grad, = chainer.grad([self.outputs[0, output]], [self.x],
                                 enable_double_backprop=True)
            self._saliency = F.max(F.absolute(grad), axis=1)[0]
        self.counts = chainer.backend.CpuDevice().send(self.outputs.array[0])
        self.saliency = chainer.backend.CpuDevice().send(self._saliency.array)


class Cached:
    """importance(row, col) of a graph, remembered per seed (calibration reuses seeds)."""

    def __init__(self, graph):
        self.graph, self.seen = graph, {}

    def __call__(self, row, col):
        if (row, col) not in self.seen:
            self.seen[(row, col)] = self.graph.importance(row, col)
        return self.seen[(row, col)]


def capped(saliency, quantile):
    """The saliency with pixels above its `quantile` quantile put below every other pixel, so
    the loop seeds from them only when nothing else is left."""
    cap = np.quantile(saliency, quantile)
    return np.where(saliency > cap, -np.finfo(np.float64).max, saliency)


def second_derivative_sets(name, graphs, select, cap_quantile=CAP_QUANTILE):
    """The loop of counting/saliency.py on prepared graphs: [(graph, cached importance)] (one
    per type for per_type, else one)."""
    out = []
    for graph, importance in graphs:
        counts = graph.counts if name != 'per_type' else [graph.counts[graph.output]]
        seeds = graph.saliency if name != 'capped_seeding' else capped(graph.saliency,
                                                                       cap_quantile)
        found = sal.localise(seeds, importance, n_sets(counts), select)
        out += [as_set(f['mask'], f['seed']) for f in found]
    return out


def prepare_graphs(name, model, settings, image_u8, device=CPU):
    """[(graph, cached importance)] for a second-derivative method."""
    if name == 'per_type':
        graphs = []
        for t in range(len(settings['types'])):
            g = OutputSaliencyGraph(model, image_u8, device, settings['input_scale'], t)
            g.output = t
            graphs.append((g, Cached(g)))
        return graphs
    g = sal.SaliencyGraph(model, np.asarray(image_u8, np.float32), device,
                          settings['input_scale'])
    return [(g, Cached(g))]


def selection(name, threshold=None):
    if name == 'thesis':
        return sal.select_threshold(defaults.DETECT['threshold'])
    if name == 'kmeans_medium':
        return sal.select_kmeans(('medium',))
    if threshold is None:
        raise ValueError('%s needs a threshold: calibrate() it first' % name)
    return sal.select_threshold(threshold)


# --- the interface ----------------------------------------------------------------------------

def localise_sets(name, model, settings, image_u8, rng, device=CPU, threshold=None,
                  cap_quantile=CAP_QUANTILE, reference='saliency', sets=None, area=None):
    """Sets (dicts seed, mask, box) of method `name` for one (3, H, W) uint8 image; see the
    module docstring. `threshold`: for CALIBRATED methods; `reference` / `sets`: what chance
    re-places; `area`: one shape's expected pixels (default from settings' sampler)."""
    check_methods([name])
    image = np.asarray(image_u8)
    if name == 'image_components':
        n = None if model is None else n_sets(predicted_counts(model, settings, image, device))
        return image_component_sets(image, n)
    if name == 'chance':
        if sets is None:
            sets = localise_sets(reference, model, settings, image, rng, device, threshold,
                                 cap_quantile, area=area)
        return place_at_random(sets, image.shape[1:], rng)
    if name in SECOND_DERIVATIVE:
        return second_derivative_sets(name, prepare_graphs(name, model, settings, image, device),
                                      selection(name, threshold), cap_quantile)
    if name in ('saliency', 'smoothgrad'):
        values = (saliency_map(model, settings, image, device) if name == 'saliency' else
                  smoothgrad_map(model, settings, image, rng, device=device))
    else:
        attributions = (integrated_gradients(model, settings, image, device=device)
                        if name == 'integrated_gradients' else
                        gradient_x_input(model, settings, image, device))
        values = np.abs(attributions.sum(axis=0))
    n = n_sets(predicted_counts(model, settings, image, device))
    area = expected_shape_area(settings) if area is None else area
    return map_sets(values, n, int(round(n * area)))


def localise(name, model, settings, image_u8, rng, **options):
    """Boolean (H, W) pixel masks of method `name` (at most the rounded predicted count)."""
    return [s['mask'] for s in localise_sets(name, model, settings, image_u8, rng, **options)]


def calibrate(name, model, settings, images, label_maps, thresholds=None, device=CPU,
              cap_quantile=CAP_QUANTILE, iou_hit=defaults.DETECT['iou_hit']):
    """{'threshold': the one of `thresholds` (default the sweep's) with the best pooled box F1
    at IoU >= iou_hit on (images, label maps) (ties: the smaller), 'f1': {threshold: F1},
    'seconds'}. The images must not be the ones the method is then scored on."""
    if name not in CALIBRATED:
        raise ValueError('%s takes no threshold' % name)
    thresholds = sorted(thresholds or defaults.DETECT['sweep_thresholds'])
    start = time.time()
    totals = {t: {} for t in thresholds}
    for image, labels in zip(images, label_maps):
        graphs = prepare_graphs(name, model, settings, image, device)
        for t in thresholds:
            found = second_derivative_sets(name, graphs, sal.select_threshold(t), cap_quantile)
            lm.add(totals[t], lm.image_counts(found, labels, int(labels.max()), iou_hit))
    f1 = {t: lm.summarise(totals[t])['box_f1_at_iou'] for t in thresholds}
    best = max(thresholds, key=lambda t: (f1[t], -t))
    return {'threshold': best, 'f1': {'%g' % t: v for t, v in f1.items()},
            'images': len(images), 'seconds': time.time() - start}
