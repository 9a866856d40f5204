"""Throughput of the counting pipeline on this machine (benchmark output, not a test).

    python counting/bench.py [--sampler-images 100] [--device @numpy]

Prints: sampler images/s at 1000x1000 with 1 and 2 workers (and the time 1,000 images would
take, extrapolated); seconds per training image of the 'small' preset (96 px) and the 'thesis'
preset (1000 px, ConvolutionalLarge) with the full run they imply on this device; seconds for
the saliency and per localisation step at both sizes. Writes the same numbers to --json.
"""
import os
import shutil
import tempfile
import time

import counting  # noqa: F401
import numpy as np

from counting import defaults, networks, sample
from counting import saliency as sal
from counting.chapter2 import sample_set, sampler_settings
from counting.training import OPTIMIZERS, CountLoss
from runkit.cli import Parser, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import provenance, write_json


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


def example_batch(n, preset):
    """n images of the preset's dataset settings (uint8) and their counts."""
    spec = defaults.TRAIN_PRESETS[preset]['dataset']
    images, counts, _ = sample_set(sampler_settings(spec), spec['shape_limit'], n, seed=0)
    return images, counts


def preset_network(preset, device):
    p = defaults.TRAIN_PRESETS[preset]
    np.random.seed(0)
    model = networks.build(p['network'], len(p['dataset']['shape_types']),
                           p['dataset']['image_height'], p['dataset']['image_width'],
                           p['activation'], p['batch_renorm'])
    model.to_device(device)
    return model, p


def bench_training(preset, iterations, device, batch=None):
    """Seconds per training iteration of the preset's network, optimiser and batch."""
    model, p = preset_network(preset, device)
    loss = CountLoss(model)
    opt = OPTIMIZERS[p['optimizer']](p['lr'], defaults.TRAIN['momentum'])
    opt.setup(loss)
    batch = batch or p['batch_size']
    x, t = example_batch(batch, preset)
    x = device.send(x.astype(np.float32) * np.float32(p['input_scale']))
    t = device.send(t)
    opt.update(loss, x, t)   # warm-up (allocations, lazy setup)
    start = time.time()
    for _ in range(iterations):
        opt.update(loss, x, t)
    if hasattr(device, 'device') and hasattr(device.device, 'synchronize'):
        device.device.synchronize()   # a GPU finishes its queued work before the clock stops
    seconds = (time.time() - start) / iterations
    train_images = round(p['dataset']['num_images'] * (1 - p['test_fraction']))
    full = seconds / batch * train_images * p['epochs']
    h, w = p['dataset']['image_height'], p['dataset']['image_width']
    # training is about three forward passes (forward, backward to inputs and to weights)
    train_flops = 3 * networks.forward_flops(networks.NETWORKS[p['network']].layers, h, w) * \
        train_images * p['epochs']
    return {'preset': preset, 'network': p['network'], 'batch': batch,
            'full_run_tflop': round(train_flops / 1e12, 1),
            'image': '%dx%d' % (p['dataset']['image_width'], p['dataset']['image_height']),
            'seconds_per_image': round(seconds / batch, 4),
            'seconds_per_iteration_of_20': round(seconds / batch * 20, 3),
            'images_per_second': round(batch / seconds, 2),
            'estimated_full_run_hours': round(full / 3600, 2),
            'full_run': '%d epochs x %d images' % (p['epochs'], train_images)}


def bench_localisation(preset, device, steps):
    """Seconds for the saliency and for each localisation step (one second derivative)."""
    model, p = preset_network(preset, device)
    images, counts = example_batch(2, preset)
    networks.set_population_statistics(
        model, lambda: [device.send(images.astype(np.float32) * np.float32(p['input_scale']))])
    model.out.b.array[...] = device.send(counts.mean(axis=0))   # a live ReLU-clamped output
    image = images[0]
    start = time.time()
    graph = sal.SaliencyGraph(model, image, device, p['input_scale'])
    saliency_seconds = time.time() - start
    start = time.time()
    sal.localise(graph.saliency, graph.importance, steps, sal.select_threshold(5e-10))
    return {'preset': preset, 'image': '%dx%d' % image.shape[1:][::-1],
            'saliency_seconds': round(saliency_seconds, 3),
            'seconds_per_step': round((time.time() - start) / steps, 3)}


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
    presets = ['small'] + ([] if args.skip_thesis_size else ['thesis'])
    out['training'] = [bench_training('small', 20, device)]
    out['localisation'] = [bench_localisation('small', device, 5)]
    if not args.skip_thesis_size:
        # a few images are enough to time the 1000x1000 network on a CPU
        out['training'].append(bench_training('thesis', 2, device, batch=4))
        out['localisation'].append(bench_localisation('thesis', device, 1))
    print('training (forward + backward + update), device %s:' % args.device)
    for r in out['training']:
        print('  %s (%s %s, batch %d): %.3f s per image, %.2f s per iteration of 20 -> %s '
              'in %.1f hours (%.0f TFLOP in all)'
              % (r['preset'], r['network'], r['image'], r['batch'], r['seconds_per_image'],
                 r['seconds_per_iteration_of_20'], r['full_run'],
                 r['estimated_full_run_hours'], r['full_run_tflop']))
    print('localisation:')
    for r in out['localisation']:
        print('  %s %s: saliency %.3f s, %.3f s per localisation step'
              % (r['preset'], r['image'], r['saliency_seconds'], r['seconds_per_step']))
    out['presets'] = presets
    if args.json:
        out['provenance'] = provenance(device=args.device)
        write_json(args.json, out)


if __name__ == '__main__':
    run_main(main)
