"""Figures 2.3-2.7 re-made from our networks, with the thesis's own pictures beside them.

Pictures are rendered as the thesis rendered them (2.2.2): saliency and importance maps as
(s / max) ** (1/10) in grey, selected pixels as 1-bit masks. The thesis's panels are read from
the folder given on the command line (counting/thesis_figures.py) and cited in the titles.
"""
import os

import numpy as np

from counting import saliency as sal
from counting import thesis_figures as tf
from runkit.provenance import atomic_write


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def draw(path, title, rows, size=1.9):
    """A grid of panels; each row a list of (array or None, caption). RGB arrays are shown as
    they are, 2-D arrays in grey (uint8) or as masks (bool)."""
    plt = _plt()
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * size, len(rows) * size + 0.6),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(row):
                ax.axis('off')
                continue
            array, caption = row[j]
            if array is None:
                ax.text(0.5, 0.5, caption, ha='center', va='center', fontsize=6, wrap=True)
                ax.axis('off')
                continue
            ax.imshow(array, cmap='gray', vmin=0, vmax=1 if array.dtype == bool else 255,
                      interpolation='nearest')
            ax.set_title(caption, fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    plt.close(fig)


def rgb(image_chw):
    return np.ascontiguousarray(image_chw.transpose(1, 2, 0))


def thesis_panel(root, path, caption):
    """A thesis picture, or a text panel saying why it is missing."""
    if root is None:
        return None, 'thesis: %s\n(pass --thesis-figures)' % os.path.basename(path)
    mode = 'RGB' if path.endswith(('001.png', '007.png')) else 'L'
    array = tf.read(root, path, mode)
    if mode == 'L' and array.max() <= 1:
        array = array.astype(bool)
    return array, 'thesis %s' % caption


def ours(maps, what, k=None):
    """Our panel: the image, its saliency, or set k's mask / importance."""
    if what == 'image':
        return rgb(maps['image']), 'image'
    if what == 'saliency':
        return sal.picture(maps['saliency']), 'saliency^0.1'
    if k >= len(maps['sets']):
        return None, 'no set %d' % (k + 1)
    s = maps['sets'][k]
    if what == 'mask':
        return s['mask'], 'step %d: pixels (%d)' % (k + 1, int(s['mask'].sum()))
    return sal.picture(s['importance']), 'step %d: importance^0.1' % (k + 1)


def figure_2_3(path, maps, root):
    entries = tf.FILES['2.3/2.4']
    rows = [[ours(m, 'image'), ours(m, 'saliency'),
             thesis_panel(root, e[0], 'image %d' % (i + 1)),
             thesis_panel(root, e[1], 'saliency^0.1 %d' % (i + 1))]
            for i, (m, e) in enumerate(zip(maps, entries))]
    draw(path, 'Figure 2.3: image and saliency. Left: ours (small, 96 px); right: the thesis '
               '(ConvolutionalLarge, 1000 px)', rows)


def figure_2_4(path, maps, root):
    entries = tf.FILES['2.3/2.4']
    rows = []
    for what in ('mask', 'importance'):
        for m, (_, _, steps) in zip(maps, entries):
            row = [ours(m, what, k) for k in range(3)]
            for k, mask, importance in steps:
                row.append(thesis_panel(root, mask if what == 'mask' else importance,
                                        'step %d %s' % (k, 'pixels' if what == 'mask'
                                                        else 'importance^0.1')))
            rows.append(row)
    draw(path, 'Figure 2.4: selected pixels (rows 1-2) and importance maps (rows 3-4), threshold '
               '5e-10. Left: ours, steps 1-3; right: the thesis\'s steps', rows)


def figure_activation(path, figure, maps, root, title):
    """2.5 (ReLU), 2.6 (SoftPlus), 2.7 (sigmoid + Batch Renormalization, a scale per shape)."""
    entries = tf.FILES[figure]
    rows = []
    for i, m in enumerate(maps):
        row = [ours(m, 'image'), ours(m, 'saliency')]
        if m['sets']:
            row += [ours(m, 'importance', 0), ours(m, 'mask', 0)]
        if i < len(entries):
            _, saliency, steps = entries[i]
            row.append(thesis_panel(root, saliency, 'saliency^0.1'))
            for k, mask, importance in steps:
                if importance:
                    row.append(thesis_panel(root, importance, 'step %d importance^0.1' % k))
                row.append(thesis_panel(root, mask, 'step %d pixels' % k))
        rows.append(row)
    draw(path, title, rows)
