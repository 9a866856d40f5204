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
        # SoftPlus: smooth (the localisation needs f'' != 0) and counts as well as ReLU here;
        # Modified SoftPlus with b = 1.1 counts worse (results/counting/metrics.md).
        'activation': 'softplus',
        'batch_renorm': True,
        'epochs': 40,
        'batch_size': 20,
        # RMSprop (one of the thesis's optimisers): momentum SGD at lr 0.07 can leave the ReLU
        # output dead at this size.
        'optimizer': 'rmsprop',
        'lr': 0.001,
        'lr_stages': 3,                # the run in 3 equal stages, learning rate x0.1 at each
        'test_fraction': 0.1,
        'batch_renorm_loss_threshold': 3.0,
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
        'lr_stages': 3,
        'test_fraction': 0.1,
        'batch_renorm_loss_threshold': 3.0,
    },
}

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
