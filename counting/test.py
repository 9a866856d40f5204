"""Test a trained counting network: MAE, RMSE, exact-count accuracy, confusion table, scatter.

    python counting/test.py [RUN_DIR] [--dataset DIR] [--out DIR]

By default RUN_DIR is runs/counting/small and the images are the run's held-out split; with
--dataset every image of that dataset is used. Writes metrics.json, confusion.md and scatter.png
to RUN_DIR/test (or --out).
"""
import os

import counting  # noqa: F401
import chainer
import numpy as np

from counting import data as data_mod
from counting import defaults, trained
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import atomic_write, provenance, write_json, write_text
from runkit.runs import runs_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def predict(model, images, scale, device, batch_size=100):
    """Predicted counts (N, types) for uint8 images (N, 3, H, W), in test mode."""
    out = []
    with chainer.using_config('train', False), chainer.using_config('enable_backprop', False):
        for s in range(0, len(images), batch_size):
            x = device.send(np.asarray(images[s:s + batch_size], dtype=np.float32) * scale)
            out.append(chainer.backend.CpuDevice().send(model(x).array))
    return np.concatenate(out)


def count_metrics(pred, truth, types, baseline):
    """Per-type MAE/RMSE/exact accuracy, a joint exact accuracy, and a predict-the-mean baseline."""
    rounded = np.rint(pred)
    metrics = {'images': int(len(truth)), 'per_type': {}}
    for k, t in enumerate(types):
        err = pred[:, k] - truth[:, k]
        metrics['per_type'][t] = {
            'mae': float(np.abs(err).mean()),
            'rmse': float(np.sqrt((err ** 2).mean())),
            'exact_accuracy': float((rounded[:, k] == truth[:, k]).mean()),
            'baseline_mae': float(np.abs(baseline[k] - truth[:, k]).mean()),
            'baseline_prediction': float(baseline[k]),
        }
    metrics['mae'] = float(np.abs(pred - truth).mean())
    metrics['baseline_mae'] = float(np.abs(baseline[None] - truth).mean())
    metrics['exact_accuracy_all_types'] = float((rounded == truth).all(axis=1).mean())
    total_err = pred.sum(axis=1) - truth.sum(axis=1)
    metrics['total_count_mae'] = float(np.abs(total_err).mean())
    return metrics


def confusion(pred, truth, types):
    """Markdown: per type, rows = true count, columns = rounded predicted count."""
    lines = []
    rounded = np.rint(pred).astype(int)
    for k, t in enumerate(types):
        true_vals = truth[:, k].astype(int)
        cols = range(min(rounded[:, k].min(), 0), max(rounded[:, k].max(), true_vals.max()) + 1)
        rows = range(0, true_vals.max() + 1)
        lines += ['', '### %s: true count (rows) vs rounded prediction (columns)' % t, '',
                  '| true \\ pred | ' + ' | '.join(str(c) for c in cols) + ' |',
                  '|---' * (len(cols) + 1) + '|']
        for r in rows:
            sel = rounded[true_vals == r, k]
            lines.append('| %d | ' % r + ' | '.join(str(int((sel == c).sum())) for c in cols)
                         + ' |')
    return '\n'.join(lines) + '\n'


def scatter(path, pred, truth, types, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(types), figsize=(4 * len(types), 4), squeeze=False)
    jitter = np.random.RandomState(0).uniform(-0.15, 0.15, truth.shape)
    for k, t in enumerate(types):
        ax = axes[0, k]
        ax.scatter(truth[:, k] + jitter[:, k], pred[:, k], s=6, alpha=0.4)
        hi = max(truth[:, k].max(), pred[:, k].max()) + 0.5
        ax.plot([0, hi], [0, hi], 'k--', lw=1)
        ax.set_xlabel('true %s count' % t)
        ax.set_ylabel('predicted %s count' % t)
        ax.set_title(t)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=100))
    plt.close(fig)


def build_parser():
    p = Parser(prog='counting/test.py', description=__doc__.splitlines()[0])
    p.add_argument('run', nargs='?', default=os.path.join(runs_root('counting'), defaults.DEFAULT_PRESET),
                   help='run folder from counting/train.py (default: runs/counting/small)')
    p.add_argument('--dataset', help='test on every image of this dataset instead')
    p.add_argument('--out', help='output folder (default RUN/test)')
    p.add_argument('--device', default='@numpy', help='Chainer device (default @numpy)')
    p.add_argument('--batch-size', type=positive_int, default=100)
    return p


def evaluate_run(run, dataset_dir=None, device_spec='@numpy', batch_size=100):
    """(metrics dict, predictions, truths, types) of a run on its split or on a dataset."""
    device = get_device(device_spec)
    model, s = trained.load(run, device)
    folder = dataset_dir or os.path.join(ROOT, s['dataset_folder'])
    dataset = data_mod.ShapeDataset(folder)
    if dataset.types != s['types']:
        raise UserError('dataset types %s differ from the network\'s %s' % (dataset.types,
                                                                            s['types']))
    if dataset.image_size != (s['image_height'], s['image_width']):
        raise UserError('dataset images are %dx%d, the network expects %dx%d'
                        % (dataset.image_size[1], dataset.image_size[0], s['image_width'],
                           s['image_height']))
    if dataset_dir:
        indices = np.arange(len(dataset))
        train_idx = np.arange(len(dataset))
    else:
        indices = np.array(trained.held_out_indices(dataset, s))
        train_idx = np.setdiff1d(np.arange(len(dataset)), indices)
    pred = predict(model, dataset.images[indices] if len(indices) < 5000 else
                   _Lazy(dataset.images, indices), s['input_scale'], device, batch_size)
    truth = dataset.counts[indices]
    baseline = dataset.counts[train_idx].mean(axis=0)
    metrics = count_metrics(pred, truth, s['types'], baseline)
    metrics['dataset'] = folder
    metrics['split'] = 'whole dataset' if dataset_dir else 'held-out test split of the run'
    return metrics, pred, truth, s


class _Lazy:
    """Index view of a memory-mapped array, read one batch at a time."""

    def __init__(self, array, indices):
        self.array, self.indices = array, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, sl):
        return self.array[self.indices[sl]]


def main(argv=None):
    args = build_parser().parse_args(argv)
    metrics, pred, truth, s = evaluate_run(args.run, args.dataset, args.device, args.batch_size)
    out = args.out or os.path.join(args.run, 'test')
    metrics['provenance'] = provenance(device=args.device, seed=s['seed'], epochs=s['epochs'],
                                       run=os.path.abspath(args.run))
    write_json(os.path.join(out, 'metrics.json'), metrics)
    write_text(os.path.join(out, 'confusion.md'), confusion(pred, truth, s['types']))
    scatter(os.path.join(out, 'scatter.png'), pred, truth, s['types'],
            '%s/%s, %d test images, MAE %.3f (mean baseline %.3f)'
            % (s['network'], s['activation'], len(truth), metrics['mae'],
               metrics['baseline_mae']))
    for t, m in metrics['per_type'].items():
        print('%-4s MAE %.3f  RMSE %.3f  exact %.1f%%  (predict-the-mean MAE %.3f)'
              % (t, m['mae'], m['rmse'], 100 * m['exact_accuracy'], m['baseline_mae']))
    print('all types exact %.1f%%; wrote %s' % (100 * metrics['exact_accuracy_all_types'], out))


if __name__ == '__main__':
    run_main(main)
