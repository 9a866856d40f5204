"""One table of defaults for every counting script (thesis chapter 2).

Each script reads its defaults from here so the thesis values live in one place.
"""

# Shape sampler (the original's generator).
SAMPLER = {
    'image_width': 1000,
    'image_height': 1000,
    'shape_types': ('tri', 'sq'),
    'shape_rotations': True,
    'shape_scaling': True,
    'scale_bounds': (10, 20),
    # False: each shape draws its own scale. True: one scale for all shapes of an image, so the
    # shape pixels do not reveal the count (Guan & Loew 2021's remedy, thesis 2.2.3).
    'limit_scale_resampling': False,
    'shape_color': (0, 0, 255),
    'seed': 0,
    'workers': 1,
    # Bounded placement: position re-draws allowed per shape before giving up.
    'placement_attempts': 2000,
}

# Training presets: the configuration of each chapter-2 figure (thesis Figures 2.3-2.7), at the
# thesis's size ('thesis*', 1000x1000, ConvolutionalLarge: a GPU's work) and scaled down
# together for a 2-core CPU ('small*': image, shapes and count range at about a tenth, the
# same-family ConvolutionalSmall, every pixel seen). Within a family the siblings differ only in
# what the thesis names for their figure: activation, Batch Renormalization, sampler mode.
#
# Figures 2.3/2.4 (the thesis's own figure files and code): one scale per image, large shapes
# (squares of scale about 103 and 118 in its two images, 17 shapes in one), sigmoid + Batch
# Renormalization, raw 0-255 pixels, plain SGD at lr 0.07, batch 20, 100 epochs, lr x0.1 at
# each third. Figures 2.5-2.7: a scale per shape; ReLU (2.5) and SoftPlus (2.6) without Batch
# Renormalization, sigmoid with it (2.7).
_THESIS = {
    'dataset': {'image_width': 1000, 'image_height': 1000, 'shape_limit': 20,
                'num_images': 4000, 'shape_types': ['tri', 'sq'], 'scale_bounds': [100, 120],
                'limit_scale_resampling': True, 'seed': 1},
    'network': 'convolutional_large',
    'activation': 'sigmoid',
    'batch_renorm': True,
    'epochs': 100,
    'batch_size': 20,
    'optimizer': 'sgd',
    'lr': 0.07,
    'lr_stages': 3,
    'test_fraction': 0.1,
    'batch_renorm_loss_threshold': 3.0,
    'input_scale': 1.0,                # raw 0..255 pixels, in training and in detection
    'output_bias': 'zero',             # Chainer's initial bias of the count layer
    # Batch Renormalization at test time: 'running' averages kept while training (the
    # thesis's), or 'population' statistics of the training images set once training ends.
    'batch_renorm_test_statistics': 'running',
}
_SMALL = dict(_THESIS, **{
    # 1000 -> 96 px (every pixel reaches ConvolutionalSmall's output at even sizes); scales
    # 100-120 -> 8-14 (a wider range, so that the per-shape/per-image contrast of 2.2.3 shows);
    # up to 12 shapes instead of 20, which keeps the thesis's shape density.
    'dataset': {'image_width': 96, 'image_height': 96, 'shape_limit': 12,
                'num_images': 6000, 'shape_types': ['tri', 'sq'], 'scale_bounds': [8, 14],
                'limit_scale_resampling': True, 'seed': 1},
    'network': 'convolutional_small',
    'epochs': 20,
    # The count layer's bias starts at the training images' mean count. At 96 px, SGD at
    # lr 0.07 from a zero bias leaves the ReLU-clamped output dead (predicting 0) within the
    # first epoch; started at the mean it trains.
    'output_bias': 'training_mean',
    # The running averages (decay 0.95, batches of 20) follow the last few dozen batches: the
    # held-out MAE of `small` moved between 0.65 and 0.85 over its last six epochs at lr 0.0007
    # while its training MAE stayed at 0.63-0.65 (measured); the population statistics of the
    # training images (Ioffe & Szegedy 2015's inference) gave 0.60 for the same weights.
    'batch_renorm_test_statistics': 'population',
})


# The data of Figures 2.5-2.7 are not recorded. Dark blobs in their saliency pictures suggest
# many smaller shapes (36 in one picture, areas of about 570-3,400 px: scales of about 30-60).
_THESIS_SCALE_PER_SHAPE = {'scale_bounds': [30, 60], 'shape_limit': 40}


def _sibling(base, figure, **changes):
    # The thesis's ReLU and SoftPlus networks (2.5, 2.6) probably trained without Batch
    # Renormalization; at 96 px, SGD at lr 0.07 without it kills their output on raw pixels
    # within 100 iterations, so the small family keeps it for every sibling.
    if base is _SMALL:
        changes.pop('batch_renorm', None)
    preset = dict(base, **changes, figure=figure)
    if 'scale_per_shape' in changes:
        del preset['scale_per_shape']
        preset['dataset'] = dict(base['dataset'], limit_scale_resampling=False)
        if base is _THESIS:
            preset['dataset'].update(_THESIS_SCALE_PER_SHAPE)
    return preset


# The sigmoid networks learn more slowly than ReLU and SoftPlus (their training MAE was still
# falling at epoch 20, at about 1.0 against ReLU's 0.37, measured); they train 30 epochs, the lr
# stages thirds of that.
_SMALL_SIGMOID = {'epochs': 30}
# With a scale per shape, SGD at lr 0.07 left the sigmoid network underfitting: training MAE
# 1.23 after the first stage and 0.90 after 30 epochs (40 epochs did no better: 1.27 at epoch
# 25); at lr 0.02 the same data, seed and epochs gave 0.93 after 20 epochs and 0.6 at the end
# (measured, one core each, same dataset).
_SMALL_SIGMOID_PER_SHAPE = dict(_SMALL_SIGMOID, lr=0.02)

# SoftPlus features are unbounded: with 80 of them, SGD at lr 0.07 overshoots the count layer
# (lr x sum of squared features well above 2) and the ReLU-clamped output died in the first
# epoch at 96 px (measured); lr 0.02 keeps that product below 2.
_SMALL_SOFTPLUS = {'lr': 0.02}

TRAIN_PRESETS = {}
for _family, _base in (('thesis', _THESIS), ('small', _SMALL)):
    TRAIN_PRESETS.update({
        _family: _sibling(_base, '2.3, 2.4', **(_SMALL_SIGMOID if _base is _SMALL else {})),
        _family + '-relu': _sibling(_base, '2.5', activation='relu', batch_renorm=False,
                                    scale_per_shape=True),
        _family + '-softplus': _sibling(_base, '2.6', activation='softplus', batch_renorm=False,
                                        scale_per_shape=True, **(_SMALL_SOFTPLUS if
                                                                 _base is _SMALL else {})),
        _family + '-sigmoid-per-shape': _sibling(_base, '2.7', scale_per_shape=True,
                                                 **(_SMALL_SIGMOID_PER_SHAPE if _base is _SMALL
                                                    else {})),
    })
DEFAULT_PRESET = 'small'

TRAIN = {
    'momentum': 0.85,
    'snapshot_every': 10,              # epochs between trainer snapshots
    'seed': 0,
    'device': '@numpy',
    # Batch Renormalization schedule (runkit.renorm.RenormSchedule): the first epoch whose last
    # training loss is below the preset's threshold sets rmax = dmax = 1.1; every 20 epochs
    # after that, the next step.
    'batch_renorm_steps': (1.1, 10.0, 100.0, 1000.0),
    'batch_renorm_step_epochs': 20,
}

# Modified SoftPlus base b in log_b(1 + b^x).
MODIFIED_SOFTPLUS_BASE = 1.1

# Saliency and localisation (thesis 2.2.1-2.2.2).
DETECT = {
    'threshold': 5e-10,                # importance >= threshold joins the seed's pixel set
    'picture_power': 0.1,              # saliency pictures: (s / max) ** 0.1 * 255
    'selection': 'threshold',
    'sweep_thresholds': (1e-12, 1e-10, 5e-10, 1e-9, 3e-9, 1e-8, 3e-8, 1e-7, 3e-7, 1e-6),
    'iou_hit': 0.5,
}
