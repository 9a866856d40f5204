"""Does the count localise? Score every localiser on the committed counting networks.

    python counting/localise.py [--images N] [--methods a,b,...] [--presets a,b] [--out DIR]

Runs counting/localisation_table.py on the committed networks of results/weights/counting/
(`small`, `small-softplus`, `small-sigmoid-per-shape`): every method of counting/localisers.py
on the same held-out images, and counting outside the training range. Writes localisation.md,
localisation.json, localisation.png and extrapolation.png to --out (default results/counting)
and prints each method's seconds per image and the total.
"""
import os
import sys

import counting  # noqa: F401

from counting import localisation_table as table, localisers
from counting.make_results import shown
from runkit.cli import Parser, UserError, non_negative_int, positive_int, run_main
from runkit.provenance import make_folder, provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def names(text, known, what):
    chosen = [n.strip() for n in text.split(',') if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise UserError('unknown %s %r; choose from %s'
                        % (what, unknown[0] if unknown else text, ', '.join(known)))
    return list(dict.fromkeys(chosen))


def build_parser():
    d = table.DEFAULTS
    p = Parser(prog='counting/localise.py', description=__doc__.splitlines()[0])
    p.add_argument('--images', type=positive_int, default=d['images'],
                   help='held-out images scored per network (default %(default)s)')
    p.add_argument('--calibration-images', type=positive_int, default=d['calibration_images'],
                   help='other held-out images the calibrated methods choose their threshold '
                        'on (default %(default)s)')
    p.add_argument('--extrapolation-images', type=non_negative_int,
                   default=d['extrapolation_images'],
                   help='fresh images per out-of-range condition; 0 skips (default %(default)s)')
    p.add_argument('--methods', default=','.join(localisers.METHODS),
                   help='comma-separated methods (default: all: %(default)s)')
    p.add_argument('--presets', default=','.join(table.PRESETS),
                   help='comma-separated committed networks (default %(default)s)')
    p.add_argument('--weights', help='store of committed networks (default '
                                     'results/weights/counting)')
    p.add_argument('--bootstrap', type=non_negative_int, default=d['bootstrap'],
                   help='bootstrap resamples for the intervals (default %(default)s)')
    p.add_argument('--seed', type=non_negative_int, default=d['seed'],
                   help='seed of smoothgrad noise, chance placements, bootstrap')
    p.add_argument('--out', default=os.path.join(ROOT, 'results', 'counting'),
                   help='output folder (default results/counting)')
    p.add_argument('--device', default='@numpy', help='Chainer device (default @numpy)')
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    methods = names(args.methods, localisers.METHODS, 'method')
    presets = names(args.presets, list(table.PRESETS), 'preset')
    if args.weights and not os.path.isdir(args.weights):
        raise UserError('%s is not a folder of committed networks' % args.weights)
    out = make_folder(args.out)
    record, examples = table.make(presets, methods, args.images, args.calibration_images,
                                  args.extrapolation_images, args.seed, args.bootstrap,
                                  args.weights, args.device)
    record['made_by'] = provenance(device=args.device, seed=args.seed)
    record['made_by']['command'] = shown([os.path.join(ROOT, 'counting', 'localise.py')] + argv)
    table.write(out, record, examples)
    print('seconds per image (mean over networks):')
    for name, seconds in record['seconds_per_image'].items():
        print('  %-22s %.3f' % (name, seconds))
    print('total %.1f s; wrote %s' % (record['total_seconds'], os.path.relpath(out, ROOT)
                                      if out.startswith(ROOT + os.sep) else out))


if __name__ == '__main__':
    run_main(main)
