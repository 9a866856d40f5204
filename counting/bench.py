"""Throughput of the counting pipeline on this machine (benchmark output, not a test).

    python counting/bench.py [--sampler-images 100] [--device @numpy]

Prints: sampler images/s at 1000x1000 with 1 and 2 workers (and the time 1,000 images would
take, extrapolated), training images/s of the default and thesis networks, and detection
seconds per image. Writes the same numbers to --json when given.
"""
import os
import shutil
import tempfile
import time

import counting  # noqa: F401
import numpy as np

from counting import defaults, networks, sample, shapes, trained
from counting import saliency as sal
from counting.training import OPTIMIZERS, CountLoss
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import provenance, write_json
from runkit.runs import runs_root


def bench_sampler(n_images, workers, shape_limit=10):
    s = dict(defaults.SAMPLER)
    s['workers'] = workers
    folder = tempfile.mkdtemp(prefix='bench-sampler-')
    try:
        start = time.time()
        sample.generate(os.path.join(folder, 'set'), n_images, shape_limit, s, log=False)
        seconds = time.time() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {'images': n_images, 'workers': workers, 'seconds': round(seconds, 2),
            'images_per_second': round(n_images / seconds, 1),
            'extrapolated_seconds_per_1000': round(1000 * seconds / n_images, 1)}


def example_batch(n, height, width, types=('tri', 'sq'), shape_limit=5, scale=(8, 16)):
    s = dict(defaults.SAMPLER)
    s.update({'image_width': width, 'image_height': height, 'scale_bounds': scale,
              'shape_types': types})
    choices = shapes.count_choices(types, shape_limit)
    xs, ts = [], []
    for i in range(n):
        counts, _, picture = shapes.sample_image(0, i, s, choices)
        xs.append(np.asarray(picture).transpose(2, 0, 1))
        ts.append([counts[t] for t in types])
    return np.array(xs, dtype=np.uint8), np.array(ts, dtype=np.float32)


def bench_training(name, height, width, batch, iterations, device, activation, batch_renorm):
    model = networks.build(name, 2, height, width, activation, batch_renorm)
    model.to_device(device)
    loss = CountLoss(model)
    opt = OPTIMIZERS['momentum_sgd'](0.001, defaults.TRAIN['momentum'])
    opt.setup(loss)
    x, t = example_batch(batch, height, width)
    x = device.send(x.astype(np.float32) / 255)
    t = device.send(t)
    opt.update(loss, x, t)   # warm-up (allocations, lazy setup)
    start = time.time()
    for _ in range(iterations):
        opt.update(loss, x, t)
    seconds = time.time() - start
    return {'network': name, 'image': '%dx%d' % (width, height), 'batch': batch,
            'iterations': iterations, 'images_per_second': round(batch * iterations / seconds, 2)}


def bench_detection(model, height, width, device, scale, n_images, max_sets=None):
    x, _ = example_batch(n_images, height, width)
    times, sets = [], []
    for image in x:
        start = time.time()
        graph = sal.SaliencyGraph(model, image, device, scale)
        n = int(round(float(graph.counts.sum())))
        n = max(1, n) if max_sets is None else min(max(1, n), max_sets)
        found = sal.localise(graph.saliency, graph.importance, n, sal.select_threshold(5e-10))
        times.append(time.time() - start)
        sets.append(len(found))
    return {'image': '%dx%d' % (width, height), 'images': n_images,
            'seconds_per_image': round(float(np.mean(times)), 3),
            'sets_per_image': round(float(np.mean(sets)), 2)}


def build_parser():
    p = Parser(prog='counting/bench.py', description=__doc__.splitlines()[0])
    p.add_argument('--sampler-images', type=positive_int, default=100,
                   help='images per sampler measurement at 1000x1000 (default %(default)s)')
    p.add_argument('--device', default='@numpy')
    p.add_argument('--skip-thesis-size', action='store_true',
                   help='skip the 1000x1000 ConvolutionalLarge measurements (slow on CPU)')
    p.add_argument('--json', help='also write the numbers here')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = get_device(args.device)
    out = {}
    print('sampler, 1000x1000, shape limit 10, %d images:' % args.sampler_images)
    out['sampler'] = []
    for workers in (1, 2):
        r = bench_sampler(args.sampler_images, workers)
        out['sampler'].append(r)
        how = ('measured' if r['images'] == 1000 else
               'extrapolated from %d images' % r['images'])
        print('  %d worker(s): %.1f images/s -> 1,000 images in %.1f s (%s)'
              % (workers, r['images_per_second'], r['extrapolated_seconds_per_1000'], how))
    d = defaults.TRAIN_PRESETS['default']
    h, w = d['dataset']['image_height'], d['dataset']['image_width']
    out['training'] = [bench_training(d['network'], h, w, d['batch_size'], 50, device,
                                      d['activation'], d['batch_renorm'])]
    if not args.skip_thesis_size:
        out['training'].append(bench_training('convolutional_large', 1000, 1000, 4, 2, device,
                                              'modified_softplus', True))
    print('training (forward + backward + update):')
    for r in out['training']:
        print('  %s %s batch %d: %.2f images/s' % (r['network'], r['image'], r['batch'],
                                                    r['images_per_second']))
    run = os.path.join(runs_root('counting'), 'default')
    try:
        model, s = trained.load(run, device)
        which = 'trained default run'
    except UserError:   # no usable default run: an untrained network of the same shape
        np.random.seed(0)
        model = networks.build(d['network'], 2, h, w, d['activation'], d['batch_renorm'])
        model.to_device(device)
        which = 'untrained default network'
    out['detection'] = [dict(bench_detection(model, h, w, device, defaults.TRAIN['input_scale'],
                                             10), model=which)]
    if not args.skip_thesis_size:
        np.random.seed(0)
        large = networks.build('convolutional_large', 2, 1000, 1000, 'modified_softplus', True)
        large.to_device(device)
        out['detection'].append(dict(bench_detection(large, 1000, 1000, device,
                                                     defaults.TRAIN['input_scale'], 1,
                                                     max_sets=1),
                                     model='untrained ConvolutionalLarge, 1 set'))
    print('detection (saliency + localisation loop):')
    for r in out['detection']:
        print('  %s %s: %.3f s per image (%.1f sets per image)'
              % (r['model'], r['image'], r['seconds_per_image'], r['sets_per_image']))
    if args.json:
        out['provenance'] = provenance(device=args.device)
        write_json(args.json, out)


if __name__ == '__main__':
    run_main(main)
