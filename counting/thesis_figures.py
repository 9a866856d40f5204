"""The thesis's own chapter-2 figure files, read from a folder the user names, and measured.

The files are the 1000x1000 images behind Figures 2.3-2.7 in the author's repository (folder
`putasideall/`, names kept); they are not part of this repository. Saliency pictures are
(s / max) ** (1/10) * 255 and selected-pixel pictures 1-bit masks (thesis 2.2.2). Every figure
came from ConvolutionalLarge at 1000 px, which never sees rows and columns 997-999.
"""
import os

import numpy as np
from PIL import Image

from counting import chapter2, figure_measures as fm
from counting import networks
from runkit.cli import UserError

_FIG23 = 'limitscaleresamplingoptionnetworkputaside'
# figure -> [(image file or None, saliency file, [(step, mask file, importance file or None)])]
FILES = {
    '2.3/2.4': [
        (_FIG23 + '/image1/touse/001.png', _FIG23 + '/image1/touse/saliency.png',
         [(k, _FIG23 + '/image1/touse/%d.png' % k, _FIG23 + '/image1/touse/%d-saliency.png' % k)
          for k in (2, 8, 17)]),
        (_FIG23 + '/image2/touse/007.png', _FIG23 + '/image2/touse/saliency.png',
         [(k, _FIG23 + '/image2/touse/%d.png' % k, _FIG23 + '/image2/touse/%d-saliency.png' % k)
          for k in (1, 2, 3)]),
    ],
    '2.5': [(None, 'nolimitscaleresamplingoptiondifferentactivation2networkputaside/image%d/'
                   'saliency.png' % k, []) for k in (1, 2)],
    '2.6': [(None, 'nolimitscaleresamplingoptiondifferentactivation3networkputaside/image1/'
                   'saliency.png',
             [(1, 'nolimitscaleresamplingoptiondifferentactivation3networkputaside/image1/1.png',
               None)])],
    '2.7': [(None, 'nolimitscaleresamplingoptiondifferentactivationnetworkputaside/image%d/'
                   'saliency.png' % k,
             [(1, 'nolimitscaleresamplingoptiondifferentactivationnetworkputaside/image%d/1.png'
               % k, 'nolimitscaleresamplingoptiondifferentactivationnetworkputaside/image%d/'
                    '1-saliency.png' % k)]) for k in (1, 2)],
}
SIZE = 1000
BAND = 4          # px at 1000: the edge band used for the thesis's files


def root_of(folder):
    """The folder holding the figure folders: `folder` itself or its putasideall/ child;
    a UserError naming the first missing file otherwise."""
    for root in (folder, os.path.join(folder, 'putasideall')):
        if all(os.path.exists(os.path.join(root, p)) for p in all_files()):
            return root
    missing = next(p for p in all_files() if not os.path.exists(os.path.join(folder, p)))
    raise UserError('%s does not hold the thesis\'s figure files (e.g. %s is missing); give '
                    'the folder that holds putasideall/ or its contents' % (folder, missing))


def all_files():
    out = []
    for entries in FILES.values():
        for image, saliency, steps in entries:
            out += [p for p in (image, saliency) if p]
            out += [p for _, mask, imp in steps for p in (mask, imp) if p]
    return out


def read(root, path, mode):
    full = os.path.join(root, path)
    try:
        with Image.open(full) as im:
            array = np.asarray(im.convert(mode))
    except (OSError, ValueError) as err:
        raise UserError('%s is not a readable image (%s)' % (full, err)) from None
    if array.shape[:2] != (SIZE, SIZE):
        raise UserError('%s is %dx%d, not the thesis\'s %dx%d'
                        % (full, array.shape[1], array.shape[0], SIZE, SIZE))
    return array


def seen():
    """Pixels ConvolutionalLarge sees at 1000 px."""
    unseen = networks.unseen_pixels(SIZE, networks.CONVOLUTIONAL_LARGE_LAYERS)
    keep = np.ones(SIZE, dtype=bool)
    keep[unseen] = False
    return keep[:, None] & keep[None, :]


def measure(folder):
    """Every measure of figure_measures on the thesis's files: {figure: [per image]}."""
    root = root_of(folder)
    valid = seen()
    out = {}
    for figure, entries in FILES.items():
        rows = []
        for image, saliency, steps in entries:
            s = fm.invert_picture(read(root, saliency, 'L'))
            on = fm.shape_mask(read(root, image, 'RGB')) if image else None
            row = {'saliency_file': saliency,
                   'stride_grid': {str(p): chapter2.stride_grid(s, p, valid & (
                       fm.regions(on, BAND)['background'] if image else True))
                       for p in chapter2.network_periods(networks.CONVOLUTIONAL_LARGE_LAYERS)
                       if p <= SIZE // 8}}
            if on is not None:
                labels, n = fm.label_shapes(on)
                row.update({'image_file': image, 'shapes': int(n),
                            'median_shape_side_px': fm.median_side(labels, n),
                            'regions': fm.where_saliency_lies(s, on, BAND, valid)})
            masks = [read(root, mask, '1').astype(bool) for _, mask, _ in steps]
            row['sets'] = [dict(r, step=k) for r, (k, _, _) in
                           zip(fm.selected_sets(masks, on, BAND), steps)]
            rows.append(row)
        out[figure] = rows
    return out
