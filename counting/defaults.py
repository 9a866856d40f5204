"""One table of defaults for every counting script (thesis chapter 2 / SPEC Part B).

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
    'limit_scale_resampling': False,   # one scale per image (Guan & Loew 2021)
    'shape_color': (0, 0, 255),
    'seed': 0,
    'workers': 1,
    # Bounded placement: position re-draws allowed per shape before giving up.
    'placement_attempts': 2000,
}

# Training presets. 'default' is a CPU-sized run that finishes in minutes and learns to count;
# 'thesis' is the full configuration of the thesis (1000x1000, ConvolutionalLarge, 100 epochs).
TRAIN_PRESETS = {
    'default': {
        # 87x87: the largest size <= 100 whose every pixel reaches the Convolutional network's
        # output (its stride-5 layers drop right/bottom edge pixels at other sizes).
        # Shapes of scale 14..24 ("larger shapes resulted in proper learning", thesis 2.2).
        'dataset': {'image_width': 87, 'image_height': 87, 'shape_limit': 4,
                    'num_images': 8000, 'shape_types': ['tri', 'sq'], 'scale_bounds': [14, 24],
                    'limit_scale_resampling': False, 'seed': 1},
        'network': 'convolutional',
        # SoftPlus: smooth (the localisation needs f'' != 0) and, in our runs, counts as well as
        # ReLU; Modified SoftPlus with b = 1.1 is nearly linear over the range BRN produces and
        # learns markedly worse here (see results/counting/metrics.md).
        'activation': 'softplus',
        'batch_renorm': True,
        'epochs': 40,
        'batch_size': 20,
        # RMSprop (one of the thesis's optimisers): momentum SGD at lr 0.07 diverged or left the
        # ReLU output dead at this size in our trials.
        'optimizer': 'rmsprop',
        'lr': 0.001,
        'lr_drops': 3,                 # learning rate x0.1 at every third of the run
        'test_fraction': 0.1,
        'brn_loss_threshold': 3.0,
    },
    'thesis': {
        'dataset': {'image_width': 1000, 'image_height': 1000, 'shape_limit': 10,
                    'num_images': 4000, 'shape_types': ['tri', 'sq'], 'scale_bounds': [10, 20],
                    'limit_scale_resampling': False, 'seed': 1},
        'network': 'convolutional_large',
        'activation': 'modified_softplus',
        'batch_renorm': True,
        'epochs': 100,
        'batch_size': 20,
        'optimizer': 'momentum_sgd',
        'lr': 0.07,
        'lr_drops': 3,
        'test_fraction': 0.1,
        'brn_loss_threshold': 3.0,
    },
}

TRAIN = {
    'momentum': 0.85,
    'snapshot_every': 10,              # epochs between trainer snapshots
    'seed': 0,
    'device': '@numpy',
    # Batch Renormalization schedule: once the epoch's last training loss < threshold,
    # rmax = dmax = 1.1; then every 20 epochs both step to 10, 100, 1000.
    'brn_first': 1.1,
    'brn_steps': (10.0, 100.0, 1000.0),
    'brn_step_every': 20,
    # Pixels enter the network as float32 in [0, 1] (uint8 / 255). Choice: the thesis does not
    # say; this keeps lr 0.07 stable without Batch Renormalization.
    'input_scale': 1.0 / 255.0,
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
