"""Saliency maps and second-derivative localisation for a trained counting network.

    python counting/detect.py [RUN_DIR] [--images N] [--threshold T] [--selection NAME] [--sweep]

For each image (by default the first N of the run's held-out split) writes to RUN_DIR/detect
(or --out): image.png, saliency.png, each found set's mask and importance map, boxes.png (one
box per found pixel set) and sets.json; over all images metrics.json with the localisation
metrics against the ground-truth polygons, and with --sweep a table over selection rules.
"""
import os
import time

import counting  # noqa: F401
import numpy as np
from PIL import Image, ImageDraw

from counting import data as data_mod
from counting import defaults, localisation_metrics as lm, saliency as sal, shapes, trained
from counting.activations import ACTIVATIONS
from runkit.cli import (Parser, UserError, non_negative_int, positive_float, positive_int,
                        run_main)
from runkit.devices import get_device
from runkit.provenance import provenance, write_json, write_text
from runkit.runs import runs_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOX_COLOURS = [(255, 255, 0), (255, 0, 0), (0, 255, 0), (255, 0, 255), (0, 255, 255),
               (255, 128, 0), (255, 255, 255)]


def save_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def boxes_picture(image_chw, found):
    """The image with one rectangle per found set, and its seed as a dot."""
    im = Image.fromarray(np.ascontiguousarray(image_chw.transpose(1, 2, 0)))
    pen = ImageDraw.Draw(im)
    for k, f in enumerate(found):
        colour = BOX_COLOURS[k % len(BOX_COLOURS)]
        if f['box'] is not None:
            pen.rectangle(f['box'], outline=colour)
        r, c = f['seed']
        pen.point((c, r), fill=colour)
    return np.asarray(im)


def selection_rule(name, threshold):
    if name not in sal.SELECTIONS:
        raise UserError('unknown selection %r; choose from %s'
                        % (name, ', '.join(sal.SELECTIONS)))
    return sal.SELECTIONS[name](threshold)


def sweep_rules(threshold):
    """Every rule the sweep compares: the thesis threshold family and the k-means options."""
    rules = [sal.select_threshold(t) for t in sorted(set(defaults.DETECT['sweep_thresholds'])
                                                      | {threshold})]
    return rules + [sal.SELECTIONS['kmeans'](None), sal.SELECTIONS['kmeans_upper'](None)]


class CachedImportance:
    """importance(row, col) remembered per seed, so a sweep pays once per distinct seed."""

    def __init__(self, graph):
        self.graph, self.cache = graph, {}

    def __call__(self, row, col):
        if (row, col) not in self.cache:
            self.cache[(row, col)] = self.graph.importance(row, col)
        return self.cache[(row, col)]


def detect_image(model, device, image_u8, scale, rule, sweep=None):
    """(graph, found sets for `rule`, {rule label: found sets} for the sweep, seconds)."""
    start = time.time()
    graph = sal.SaliencyGraph(model, image_u8, device, scale)
    n = int(round(float(graph.counts.sum())))
    importance = CachedImportance(graph)
    found = sal.localise(graph.saliency, importance, n, rule)
    seconds = time.time() - start
    swept = {}
    for other in sweep or []:
        swept[other.label] = sal.localise(graph.saliency, importance, n, other)
    return graph, found, swept, seconds


def write_image_outputs(folder, image_u8, graph, found):
    save_png(os.path.join(folder, 'image.png'), np.ascontiguousarray(image_u8.transpose(1, 2, 0)))
    save_png(os.path.join(folder, 'saliency.png'), sal.picture(graph.saliency))
    for k, f in enumerate(found, 1):
        save_png(os.path.join(folder, 'set%02d_mask.png' % k), f['mask'].astype(np.uint8) * 255)
        save_png(os.path.join(folder, 'set%02d_importance.png' % k), sal.picture(f['importance']))
    save_png(os.path.join(folder, 'boxes.png'), boxes_picture(image_u8, found))
    write_json(os.path.join(folder, 'sets.json'), {
        'counts': graph.counts.tolist(),
        'sets': [{'seed_row_col': f['seed'], 'box_x0_y0_x1_y1': f['box'],
                  'pixels': int(f['mask'].sum()),
                  'max_importance': float(f['importance'].max())} for f in found]})


def build_parser():
    d = defaults.DETECT
    p = Parser(prog='counting/detect.py', description=__doc__.splitlines()[0])
    p.add_argument('run', nargs='?',
                   default=os.path.join(runs_root('counting'), defaults.DEFAULT_PRESET),
                   help='run folder from counting/train.py (default: runs/counting/small)')
    p.add_argument('--dataset', help='use this dataset (with annotations) instead of the '
                   "run's held-out split")
    p.add_argument('--images', type=positive_int, default=8,
                   help='number of images to process (default %(default)s)')
    p.add_argument('--save-pictures', type=non_negative_int, default=None,
                   help='write pictures for only the first K images (default: all)')
    p.add_argument('--threshold', type=positive_float, default=d['threshold'],
                   help='importance threshold (default %(default)g, the original\'s)')
    p.add_argument('--selection', default=d['selection'], choices=sorted(sal.SELECTIONS),
                   help='rule that turns an importance map into a pixel set')
    p.add_argument('--sweep', action='store_true',
                   help='also score every threshold of the sweep and the k-means rules')
    p.add_argument('--saliency-only', action='store_true',
                   help='write image and saliency only (works for ReLU networks)')
    p.add_argument('--out', help='output folder (default RUN/detect)')
    p.add_argument('--device', default='@numpy', help='Chainer device (default @numpy)')
    return p


def pick_images(args, settings):
    folder = args.dataset or os.path.join(ROOT, settings['dataset_folder'])
    dataset = data_mod.ShapeDataset(folder)
    if dataset.image_size != (settings['image_height'], settings['image_width']):
        raise UserError('dataset images are %dx%d, the network expects %dx%d'
                        % (dataset.image_size[1], dataset.image_size[0],
                           settings['image_width'], settings['image_height']))
    if args.dataset:
        indices = list(range(len(dataset)))
    else:
        indices = trained.held_out_indices(dataset, settings)
    return dataset, indices[:args.images]


def metrics_table(rows):
    keys = ['pointing_game', 'mask_precision', 'mask_recall', 'mean_matched_box_iou',
            'box_f1_at_iou', 'double_hit_rate', 'empty_set_rate']
    lines = ['| selection | ' + ' | '.join(keys) + ' |', '|---' * (len(keys) + 1) + '|']
    for label, m in rows:
        lines.append('| %s | ' % label + ' | '.join(
            '-' if m[k] is None else '%.3f' % m[k] for k in keys) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = get_device(args.device)
    model, s = trained.load(args.run, device)
    out = args.out or os.path.join(args.run, 'detect')
    dataset, indices = pick_images(args, s)
    rule = selection_rule(args.selection, args.threshold)
    flat = ACTIVATIONS[s['activation']].zero_second_derivative
    sweep = sweep_rules(args.threshold) if args.sweep else None
    keep = len(indices) if args.save_pictures is None else args.save_pictures
    total, swept_total, seconds = {}, {}, []
    for n_done, i in enumerate(indices):
        name = dataset.names[i]
        folder = os.path.join(out, os.path.splitext(name)[0])
        image = np.asarray(dataset.images[i])
        if args.saliency_only or flat:
            graph = sal.SaliencyGraph(model, image, device, s['input_scale'])
            save_png(os.path.join(folder, 'image.png'),
                     np.ascontiguousarray(image.transpose(1, 2, 0)))
            save_png(os.path.join(folder, 'saliency.png'), sal.picture(graph.saliency))
            if args.saliency_only:
                continue
            raise UserError('%s networks have a second derivative of zero everywhere, so the '
                            'localisation has nothing to select (saliency written to %s); use a '
                            'smooth activation, or --saliency-only' % (s['activation'], folder))
        try:
            graph, found, swept, sec = detect_image(model, device, image, s['input_scale'],
                                                    rule, sweep)
        except sal.ZeroSecondDerivative as err:
            raise UserError('%s (image %s)' % (err, name)) from None
        seconds.append(sec)
        if n_done < keep:
            write_image_outputs(folder, image, graph, found)
        truth = dataset.shapes_of(i)
        labels = shapes.label_map(truth, s['image_width'], s['image_height'])
        lm.add(total, lm.image_counts(found, labels, len(truth), defaults.DETECT['iou_hit']))
        for label, f in swept.items():
            lm.add(swept_total.setdefault(label, {}),
                   lm.image_counts(f, labels, len(truth), defaults.DETECT['iou_hit']))
        print('%s: counts %s, %d sets, %.2f s' % (name, np.round(graph.counts, 2).tolist(),
                                                  len(found), sec))
    if args.saliency_only:
        print('wrote saliency for %d images to %s' % (len(indices), out))
        return
    prov = provenance(device=args.device, seed=s['seed'], epochs=s['epochs'],
                      run=os.path.abspath(args.run))
    result = {'selection': rule.label, 'metrics': lm.summarise(total), 'counts': total,
              'seconds_per_image': float(np.mean(seconds)), 'iou_hit': defaults.DETECT['iou_hit'],
              'network': s['network'], 'activation': s['activation'],
              'batch_renorm': s['batch_renorm'], 'provenance': prov}
    write_json(os.path.join(out, 'metrics.json'), result)
    print(metrics_table([(rule.label, result['metrics'])]))
    if sweep:
        rows = [(label, lm.summarise(t)) for label, t in swept_total.items()]
        write_json(os.path.join(out, 'sweep.json'), {
            'rows': [{'selection': label, 'metrics': m} for label, m in rows],
            'provenance': prov})
        table = metrics_table(rows)
        write_text(os.path.join(out, 'sweep.md'), table + '\n' + '\n'.join(
            '- %s: `%s`' % (k, prov[k]) for k in ('command', 'commit', 'device', 'date')) + '\n')
        print(table)
    print('%.2f s per image; wrote %s' % (float(np.mean(seconds)), out))


if __name__ == '__main__':
    run_main(main)
