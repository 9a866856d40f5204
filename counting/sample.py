"""Generate a shape-counting dataset: numbered PNGs, truths.json and annotations.json.

    python counting/sample.py OUT NUM_IMAGES SHAPE_LIMIT [options]

The dataset is written into a temporary folder beside OUT and renamed into place when complete,
so OUT never holds half a dataset. Image i is drawn from a generator seeded by (seed, i): the
output is identical for any number of workers.
"""
import json
import os
import shutil
import tempfile
import time

from counting import defaults, shapes
from runkit.cli import (Parser, UserError, helper_pool, int_arg, non_negative_int,
                        positive_int, run_main)
from runkit.provenance import provenance, write_json

DATASET_FILES = ('truths.json', 'annotations.json', 'sample_settings.json', 'decoded.npy',
                 'decoded.json')


def image_name(index, num_images):
    """File name of image `index` (1-based), zero-padded to the width of num_images."""
    return '%0*d.png' % (len(str(num_images)), index)


def _write_one(job):
    """Worker: draw image `index` into `folder`; return its name, counts and shapes."""
    folder, index, num_images, settings, choices = job
    counts, placed, picture = shapes.sample_image(settings['seed'], index, settings, choices)
    name = image_name(index, num_images)
    picture.save(os.path.join(folder, name), compress_level=1)
    return name, counts, placed


def generate(out, num_images, shape_limit, settings, log=True):
    """Write a full dataset to `out` (created or replaced atomically). Returns the truths dict."""
    shapes.check_feasible(settings, shape_limit)
    choices = shapes.count_choices(settings['shape_types'], shape_limit)
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix='.' + os.path.basename(out) + '.partial-')
    except OSError as err:
        raise UserError('cannot write in %s (%s)' % (parent, err.strerror)) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp makes it private; a dataset is an ordinary folder
    try:
        jobs = [(tmp, i, num_images, settings, choices) for i in range(1, num_images + 1)]
        truths, annotations = {}, {}
        start = time.time()
        if settings['workers'] > 1:
            with helper_pool(settings['workers']) as pool:
                results = list(pool.imap(_write_one, jobs, chunksize=8))
        else:
            results = [_write_one(job) for job in jobs]
        for name, counts, placed in results:
            truths[name] = counts
            annotations[name] = placed
        seconds = time.time() - start
        for fname, obj in (('truths.json', truths), ('annotations.json', annotations)):
            with open(os.path.join(tmp, fname), 'w') as f:
                json.dump(obj, f, indent=1 if fname == 'truths.json' else None)
        write_json(os.path.join(tmp, 'sample_settings.json'), {
            'num_images': num_images, 'shape_limit': shape_limit,
            'settings': {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            'seconds': round(seconds, 3),
            'provenance': provenance(seed=settings['seed']),
        })
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if log:
        print('wrote %d images to %s in %.1f s (%d workers)'
              % (num_images, out, seconds, settings['workers']))
    return truths


def _replace_folder(tmp, out):
    """Rename tmp onto out. An existing out must be empty or an earlier dataset of ours."""
    if os.path.isdir(out) and os.listdir(out):
        names = os.listdir(out)
        ours = all(n.endswith('.png') or n in DATASET_FILES for n in names)
        if not ours or 'truths.json' not in names:
            raise UserError('%s exists and is not an earlier dataset from this sampler; '
                            'choose an empty or new folder' % out)
        old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix='.old-')
        os.replace(out, os.path.join(old, 'dataset'))
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    elif os.path.exists(out) and not os.path.isdir(out):
        raise UserError('%s exists and is not a folder' % out)
    else:
        os.replace(tmp, out)


def build_parser():
    d = defaults.SAMPLER
    p = Parser(prog='counting/sample.py', description=__doc__.splitlines()[0])
    p.add_argument('out', metavar='OUT', help='folder that receives the dataset')
    p.add_argument('num_images', metavar='NUM_IMAGES', type=positive_int,
                   help='number of images')
    p.add_argument('shape_limit', metavar='SHAPE_LIMIT', type=non_negative_int,
                   help='largest total number of shapes in one image')
    p.add_argument('--image-width', type=positive_int, default=d['image_width'],
                   help='image width in pixels (default %(default)s)')
    p.add_argument('--image-height', type=positive_int, default=d['image_height'],
                   help='image height in pixels (default %(default)s)')
    p.add_argument('--shape-types', nargs='+', choices=sorted(shapes.TEMPLATES),
                   default=list(d['shape_types']), help='shape types to draw (default: tri sq)')
    p.add_argument('--no-shape-rotations', action='store_true',
                   help='draw every shape unrotated')
    p.add_argument('--no-shape-scaling', action='store_true',
                   help='draw every shape at the lower scale bound')
    p.add_argument('--scale-bounds', nargs=2, type=positive_int, metavar=('LO', 'HI'),
                   default=list(d['scale_bounds']),
                   help='integer scale factor range, inclusive (default 10 20)')
    p.add_argument('--limit-scale-resampling', action='store_true',
                   help='one scale for all shapes of an image (Guan & Loew 2021)')
    p.add_argument('--shape-color', nargs=3, type=int_arg, metavar=('R', 'G', 'B'),
                   default=list(d['shape_color']), help='shape colour (default 0 0 255)')
    p.add_argument('--seed', type=non_negative_int, default=d['seed'],
                   help='random seed (default %(default)s)')
    p.add_argument('--workers', type=positive_int, default=d['workers'],
                   help='parallel processes (default %(default)s)')
    return p


def settings_from_args(args):
    """Validated sampler settings from parsed arguments (UserError on a bad combination)."""
    lo, hi = args.scale_bounds
    if lo > hi:
        raise UserError('--scale-bounds LO HI needs LO <= HI, got %d %d' % (lo, hi))
    if any(not 0 <= c <= 255 for c in args.shape_color):
        raise UserError('--shape-color needs three values in 0..255, got %s'
                        % ' '.join(map(str, args.shape_color)))
    if tuple(args.shape_color) == (0, 0, 0):
        raise UserError('--shape-color 0 0 0 is the background colour; shapes would be invisible')
    if len(set(args.shape_types)) != len(args.shape_types):
        raise UserError('--shape-types lists a type twice: %s' % ' '.join(args.shape_types))
    settings = dict(defaults.SAMPLER)
    settings.update({
        'image_width': args.image_width, 'image_height': args.image_height,
        'shape_types': tuple(args.shape_types), 'shape_rotations': not args.no_shape_rotations,
        'shape_scaling': not args.no_shape_scaling, 'scale_bounds': (lo, hi),
        'limit_scale_resampling': args.limit_scale_resampling,
        'shape_color': tuple(args.shape_color), 'seed': args.seed, 'workers': args.workers,
    })
    return settings


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    try:
        generate(args.out, args.num_images, args.shape_limit, settings)
    except shapes.PlacementError as err:
        raise UserError(str(err)) from None


if __name__ == '__main__':
    run_main(main)
