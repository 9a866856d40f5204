"""Thesis Tables 3.2 and 3.3: find or train every network, attack it, summarise over seeds.

A network (name, seed) is taken, in order, from the committed weights, from a finished run
folder with identical settings (friendly/weights.py: locate), or trained (unless training is
forbidden). Each victim is scored on the test images in batches of 200: clean,
white-box FGSM (its own gradients) and black-box FGSM (gradients of the one `source` network),
then again with the GPU's sigmoid arithmetic (friendly/functions/cuda_sigmoid.py), a labelled
diagnostic.
"""
import collections
import contextlib
import json
import os
import time
import traceback

import chainer
import numpy as np

from friendly import robustness, training, weights
from friendly.defaults import NETWORKS, PROTOCOL, SEEDS, SOURCE, THESIS_RESULTS
from friendly.functions.cuda_sigmoid import with_cuda_sigmoid
from friendly.networks import BN_MODE_MEANING
from runkit.cli import UserError, ending_pool, worker_signals
from runkit.provenance import atomic_write, make_folder, provenance, record_title
from runkit.runs import RunFolder, runs_root

DEFAULT_NETWORKS = ('S', 'RS', 'A', 'GMR', 'GMRES')   # PD needs a GPU (evaluate.py --recorded)

ROWS = (('white_box_fgsm', 'Table 3.2 white-box FGSM'),
        ('black_box_fgsm', 'Table 3.2 black-box FGSM'),
        ('clean', 'Table 3.3 clean'))
# Beyond the thesis, a diagnostic of the FGSM columns: how many entries of the FGSM gradient
# are exactly 0, and the whole measurement again with the sigmoid computed as on the thesis's GPU
# (friendly/functions/cuda_sigmoid.py), beside the thesis's value of the same row.
CUDA = '_cuda_sigmoid'
DIAGNOSTIC_ROWS = (('zero_gradient', 'FGSM gradient entries exactly 0 (%)', None),
                   ('zero_gradient' + CUDA, 'the same, CUDA sigmoid (%)', None),
                   ('clean' + CUDA, 'clean, CUDA sigmoid', 'clean'),
                   ('white_box_fgsm' + CUDA, 'white-box FGSM, CUDA sigmoid', 'white_box_fgsm'),
                   ('black_box_fgsm' + CUDA, 'black-box FGSM, CUDA sigmoid', 'black_box_fgsm'))
SUMMARISED = tuple(k for k, _ in ROWS) + tuple(k for k, _, _ in DIAGNOSTIC_ROWS)


def default_seeds(quick):
    return [1] if quick else list(SEEDS)


class Request(collections.namedtuple('Request', [
        'networks',      # victims, names of defaults.VICTIMS
        'seeds',         # seeds of every victim, the default first
        'quick',         # the reduced protocol (defaults.QUICK)
        'epochs',        # maximum epochs of every network (None: the protocol's)
        'epochs_for',    # {name: maximum epochs} for some networks
        'train_subset',  # training images (None: the protocol's)
        'test_subset',   # first test images attacked (None: all)
        'bn_mode',       # Batch Renormalization at test time (networks.BN_MODES)
        'arithmetic',    # the sigmoids' arithmetic (networks.ARITHMETICS)
        'device',        # Chainer device spec
        'recorded',      # {name: column} measured by an earlier command (recorded_column)
        'store',         # a record's own weights store, searched first (None: the repository's)
        'beside',        # another record's summary shown beside these tables (beside_record)
])):
    """What one set of tables is made of (friendly/evaluate.py's options)."""
    __slots__ = ()

    def settings(self, name, seed=None):
        return training.settings_for(name, self.quick, self.epochs_for.get(name, self.epochs),
                                     seed, self.train_subset, arithmetic=self.arithmetic)

    def plan(self):
        """The settings of every network the tables need: the source first, then each victim
        with each seed."""
        return [self.settings(SOURCE)] + [self.settings(n, s) for n in self.networks
                                          for s in self.seeds]

    def folder(self):
        """runs/friendly/tables/<protocols>[-<option>...]: every option that changes the tables
        and differs from its default is in the name, so that no variant overwrites another's."""
        parts = ['+'.join(dict.fromkeys(s['protocol'] for s in self.plan()))]
        if list(self.networks) != list(DEFAULT_NETWORKS):
            parts.append('+'.join(self.networks))
        if list(self.seeds) != default_seeds(self.quick):
            parts.append('seeds' + '+'.join(map(str, self.seeds)))
        if self.test_subset:
            parts.append('test%d' % self.test_subset)
        if self.bn_mode != PROTOCOL['bn_test_mode']:
            parts.append(self.bn_mode)
        if self.recorded:
            parts.append('recorded')
        if self.beside:
            parts.append('beside')
        if self.device != '@numpy':
            parts.append(self.device.lstrip('@').replace(':', ''))
        return os.path.join(runs_root('friendly'), 'tables', '-'.join(parts))


def find(request, from_weights=False, only_available=False, jobs=1, mnist_dir=None):
    """(the found networks of request.plan(), source first; 'NAME seed K' of those left out).
    Unless told to train nothing (`from_weights`: every network must be found;
    `only_available`: the source and every victim's default seed must be), what is missing is
    trained first, `jobs` at once."""
    plan, missing = request.plan(), []
    if from_weights or only_available:
        missing = ['%s seed %d' % (s['network'], s['seed']) for s in plan
                   if weights.locate(s, request.store) is None]
        needed = [plan[0]] + [request.settings(n, request.seeds[0]) for n in request.networks]
        if missing and (from_weights or any(weights.locate(s, request.store) is None
                                            for s in needed)):
            raise UserError('%s: no committed weights or finished run for %s' % (
                '--from-weights' if from_weights else '--only-available (the source '
                'and every default seed are needed)', ', '.join(missing)))
    else:
        train_missing(plan, request.device, jobs, mnist_dir, request.store)
    found = [f for f in (weights.locate(s, request.store) for s in plan) if f is not None]
    return found, missing


def recorded_column(spec):
    """('PD', column) from 'path/tables.json:PD': a column measured by an earlier command."""
    path, _, name = spec.rpartition(':')
    try:
        with open(path) as f:
            old = json.load(f)
        entry, prov = old['networks'][name], old['provenance']
    except FileNotFoundError:
        raise UserError('--recorded: %s does not exist' % path) from None
    except (ValueError, KeyError, TypeError):
        raise UserError('--recorded %s: expected FILE:NAME with FILE a tables.json holding '
                        'network %r' % (spec, name)) from None
    values = {key: entry[key] for key, _ in ROWS if key in entry}
    column = dict(values, thesis_column=entry.get('thesis_column', name),
                  seed=entry['seed'], epochs=entry['epochs'], protocol=entry['protocol'],
                  bn_mode='%s (as of %s)' % (prov['evaluation']['bn_mode'], prov['commit'][:7]),
                  train_device=entry.get('train_device'),
                  seeds=[dict(values, seed=entry['seed'], epochs=entry['epochs'])],
                  recorded='`%s` at commit `%s` (%s), file %s' % (
                      prov['command'], prov['commit'], entry.get('eval_device'), path))
    column['over_seeds'] = {key: summary([v]) for key, v in values.items()}
    column['aim_met'] = within_aim(column['thesis_column'], column['over_seeds'])
    return name, column


def beside_record(path):
    """Another record's tables (a tables.json of friendly/evaluate.py, e.g. the networks trained
    with the CUDA sigmoid arithmetic), to be shown beside this command's: its opening note, its
    provenance, and per network the seeds and the summary of each row of ROWS over them."""
    try:
        with open(path) as f:
            other = json.load(f)
        prov = other['provenance']
        networks = {name: {'protocol': entry['protocol'],
                           'seeds': [r['seed'] for r in entry['seeds']],
                           'over_seeds': {key: entry['over_seeds'][key] for key, _ in ROWS}}
                    for name, entry in other['networks'].items() if not entry.get('recorded')}
        return {'file': path, 'note': other.get('note', ''), 'command': prov['command'],
                'commit': prov['commit'], 'device': prov['device'], 'networks': networks}
    except FileNotFoundError:
        raise UserError('--beside: %s does not exist' % path) from None
    except (ValueError, KeyError, TypeError):
        raise UserError('--beside %s: not a tables.json written by friendly/evaluate.py'
                        % path) from None


def make(request, found, missing, data, started, progress=True):
    """(table, note, provenance, Elastic Sigmoid logs per network) of the tables: every found
    victim scored against the source (score), summarised over its seeds, beside the recorded
    columns; `started`: when the command began (for the wall time)."""
    source, victims = found[0], found[1:]
    scores = score(victims, source, data, request.device, bn_mode=request.bn_mode,
                   progress=progress)
    table, logs = {}, {}
    for name in request.networks:
        founds = [f for f in victims if f.settings['network'] == name]
        runs = [dict(scores[(name, f.settings['seed'])], seed=f.settings['seed'],
                     **f.describe()) for f in founds]
        if NETWORKS[name].activation == 'elastic_sigmoid':
            logs[name] = {'%s seed %d' % (name, f.settings['seed']): f.training_log()
                          for f in founds}
            for run, log in zip(runs, logs[name].values()):
                run['elastic_sigmoid'] = collapse(log)
        over = {key: summary([r[key] for r in runs]) for key in SUMMARISED}
        table[name] = dict(
            {key: runs[0][key] for key, _ in ROWS}, thesis_column=name,
            seed=request.seeds[0], epochs=runs[0]['epochs'],
            protocol=victims[0].settings['protocol'], bn_mode=request.bn_mode,
            train_device=runs[0]['train_device'], seeds=runs, over_seeds=over,
            aim_met=within_aim(name, over))
    table.update(request.recorded)
    source_info = source.describe()
    source_info.update(zero_gradient_percent(source.load(request.device), data, request.device,
                                              request.bn_mode))
    prov = provenance(request.device, wall_time_s=round(time.time() - started, 1),
                      seeds=list(request.seeds),
                      source=dict(seed=source.settings['seed'],
                                  protocol=source.settings['protocol'], **source_info),
                      evaluation={'attacks': ['fgsm'], 'epsilon': PROTOCOL['epsilon'],
                                  'bn_mode': request.bn_mode, 'test_images': len(data[0]),
                                  'batch_size': PROTOCOL['eval_batch_size']})
    return table, note(request, table, found, missing, len(data[0]), logs), prov, logs


def note(request, table, found, missing, images, logs):
    """The tables' opening note: the victims' protocol, test mode, arithmetic, the source (the
    first found), what is left out, and the Elastic Sigmoid runs that collapsed."""
    text = '**Protocol: %s.** ' % found[1].settings['protocol'] + (
        'QUICK reduced protocol: not comparable with the thesis.' if request.quick else
        'The thesis protocol (thesis 3.3; early stopping on the epoch-mean training loss, '
        'patience 20, at most 100 epochs).')
    text += ' Batch Renormalization at test time: %r (%s)%s.' % (
        request.bn_mode, BN_MODE_MEANING[request.bn_mode],
        '' if request.bn_mode == PROTOCOL['bn_test_mode'] else ', **not the thesis test mode**')
    if request.arithmetic == 'cuda':
        text += (' Every sigmoid (plain and Elastic) computed, in training and in every test, '
                 'as Chainer\'s CUDA kernel computes it (the thesis\'s GPU; '
                 'friendly/functions/cuda_sigmoid.py), not in the device\'s own arithmetic.')
    text += ' Black-box source: %s seed %d.' % (SOURCE, found[0].settings['seed'])
    if missing:
        text += ' **Not yet trained, so left out:** %s.' % ', '.join(missing)
    if images != 10000:
        text += ' Attacked on the first %d test images only.' % images
    for name in logs:
        gone = [r['seed'] for r in table[name]['seeds'] if r['elastic_sigmoid']['collapsed']]
        text += (' %s: %d of %d seeds collapsed (last epoch\'s training accuracy more than %d '
                 'points below its best%s; Elastic Sigmoid scales per epoch in %s_scales.png).'
                 % (name, len(gone), len(table[name]['seeds']), 100 * COLLAPSE_DROP,
                    ': seed ' + ', '.join(map(str, gone)) if gone else '', name))
    return text

def _train_logged(job):
    """One training run in a worker process, its console output (and any traceback) in
    <run folder>/train.log; returns (settings, None) or (settings, a one-line error)."""
    settings, device, mnist_dir = job
    folder = weights.run_folder(settings)
    make_folder(folder)
    with open(os.path.join(folder, 'train.log'), 'a') as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            training.train(settings, folder, device, resume=bool(RunFolder(folder).snapshots()),
                           progress=False, mnist_dir=mnist_dir,
                           restart_advice='remove %s to train it from the start' % folder)
        except UserError as err:
            return settings, str(err)
        except Exception as err:  # noqa: BLE001 - the traceback goes to the log
            traceback.print_exc()
            return settings, 'training %s seed %d failed (%s); see %s/train.log' % (
                settings['network'], settings['seed'], type(err).__name__, folder)
    return settings, None


def train_missing(plan, device='@numpy', jobs=1, mnist_dir=None, store=None):
    """Train (or resume) every settings dict of `plan` that has no network yet, `jobs` at once;
    an interruption (Ctrl-C, SIGTERM) or a failed run stops every worker."""
    todo = [s for s in plan if weights.locate(s, store) is None]
    if not todo:
        return
    started = time.time()
    print('training %d networks, %d at once:' % (len(todo), min(jobs, len(todo))), flush=True)
    # spawn: a fresh interpreter, safe with CUDA
    with ending_pool(min(jobs, len(todo)), worker_signals, 'spawn') as pool:
        for s in todo:
            print('  %s seed %d in %s (log: train.log there)'
                  % (s['network'], s['seed'], weights.run_folder(s)), flush=True)
        runs = pool.imap_unordered(_train_logged, [(s, device, mnist_dir) for s in todo])
        for done, (s, error) in enumerate(runs, 1):
            if error:
                raise UserError(error)
            print('finished %s seed %d (%d of %d, %.0f s since the start)'
                  % (s['network'], s['seed'], done, len(todo), time.time() - started), flush=True)


def zero_gradient_percent(net, data, device, bn_mode):
    """Percent of the entries of the FGSM gradient dL/dx (clean test batches of 200) that are
    exactly 0, with Chainer's sigmoid and with the CUDA sigmoid."""
    device = chainer.get_device(device)
    return {'zero_gradient' + suffix: robustness.zero_gradient_percent(
        variant, data[0], data[1], bn_mode, device, ('squared_distance',))['squared_distance']
        for suffix, variant in (('', net), (CUDA, with_cuda_sigmoid(net)))}


def score(victims, source, data, device, epsilon=PROTOCOL['epsilon'],
          bn_mode=PROTOCOL['bn_test_mode'], progress=False):
    """{(name, seed): percent dict} for every found victim (weights.Found), against one source:
    accuracy clean and under the thesis's FGSM, white- and black-box (robustness.Evaluator's
    thesis columns), the same with the CUDA sigmoid in victim and source (keys ending in
    _cuda_sigmoid), and the zero-gradient diagnostic. With `progress`, a line per victim and
    step with its time."""
    device = chainer.get_device(device)
    source_net = source.load(device)
    evaluators = {suffix: robustness.Evaluator(made, device, {}, chunk=robustness.EVAL_BATCH)
                  for suffix, made in (('', source_net), (CUDA, with_cuda_sigmoid(source_net)))}
    out = {}
    started = time.time()
    for k, found in enumerate(victims, 1):
        network, seed = found.settings['network'], found.settings['seed']
        name = '[%d/%d] %s seed %d' % (k, len(victims), network, seed)
        victim_started = time.time()
        net, victim_id = found.load(device), weights.file_name(found.settings)
        with _timed(progress, '%s: clean and fgsm, white- and black-box, on %d images'
                    % (name, len(data[0]))):
            accuracy = evaluators[''].accuracy(net, victim_id, data[0], data[1], epsilon,
                                               bn_mode, robustness.THESIS_COLUMNS)
        with _timed(progress, '%s: the same with the CUDA sigmoid' % name):
            on_cuda = evaluators[CUDA].accuracy(with_cuda_sigmoid(net), victim_id, data[0],
                                                data[1], epsilon, bn_mode,
                                                robustness.THESIS_COLUMNS)
        accuracy.update({key + CUDA: value for key, value in on_cuda.items()})
        accuracy.update(zero_gradient_percent(net, data, device, bn_mode))
        accuracy['eval_seconds'] = round(time.time() - victim_started, 1)
        out[(network, seed)] = accuracy
        if progress:
            left = (time.time() - started) / k * (len(victims) - k)
            print('%s: done in %.1f s; about %.0f s left' % (name, accuracy['eval_seconds'],
                                                             left), flush=True)
    return out


@contextlib.contextmanager
def _timed(progress, what):
    """With `progress`, print `what` and the seconds it took once it is done."""
    started = time.time()
    yield
    if progress:
        print('%s: %.1f s' % (what, time.time() - started), flush=True)


def summary(values):
    """Mean, sample standard deviation, min and max of per-seed values (percent)."""
    v = np.asarray(values, dtype=float)
    return {'n': len(v), 'mean': round(float(v.mean()), 2),
            'std': round(float(v.std(ddof=1)), 2) if len(v) > 1 else None,
            'min': round(float(v.min()), 2), 'max': round(float(v.max()), 2)}


def within_aim(name, over_seeds):
    """The thesis reproduction aim: seed mean within 1 point of Table 3.3 and 5 of Table 3.2."""
    verdict = {}
    for key, tolerance in (('clean', 1.0), ('white_box_fgsm', 5.0), ('black_box_fgsm', 5.0)):
        theirs = THESIS_RESULTS[key].get(name)
        if theirs is not None and key in over_seeds:
            verdict[key] = abs(over_seeds[key]['mean'] - theirs) <= tolerance
    return verdict


def _cell(ours, theirs):
    if ours is None:
        return '—'
    if theirs is None:
        return '%.2f / — ' % ours
    return '%.2f / %.2f (%+.2f)' % (ours, theirs, ours - theirs)


def _spread(s):
    if s is None:
        return '—'
    if s['n'] == 1:
        return '%.2f (1 seed)' % s['mean']
    return '%.2f ± %.2f [%.2f–%.2f]' % (s['mean'], s['std'], s['min'], s['max'])


def markdown(table, note, prov, beside=None):
    """tables.md: the default seed against the thesis, then the spread over seeds, then (with
    `beside`, a beside_record) another record's spread over seeds next to this one's."""
    names = list(table)
    head = '| | ' + ' | '.join(names) + ' |\n' + '|---' * (len(names) + 1) + '|'
    lines = [record_title('# Thesis Tables 3.2 and 3.3, reproduced', prov['commit']), '', note,
             '',
             '## Default seed against the thesis', '',
             'Accuracy (%) on the MNIST test images: `ours / thesis (difference)`.', '', head,
             '| seed | ' + ' | '.join(str(table[n]['seed']) for n in names) + ' |',
             '| epochs trained | ' + ' | '.join(str(table[n]['epochs']) for n in names) + ' |',
             '| protocol | ' + ' | '.join(table[n]['protocol'] for n in names) + ' |',
             '| Batch Renorm test mode | ' + ' | '.join(table[n]['bn_mode'] for n in names)
             + ' |',
             '| trained on | ' + ' | '.join(str(table[n]['train_device']) for n in names) + ' |']
    for key, title in ROWS:
        lines.append('| %s | %s |' % (title, ' | '.join(
            _cell(table[n].get(key), THESIS_RESULTS[key].get(table[n]['thesis_column']))
            for n in names)))
    lines += ['', '## Over seeds', '',
              'Mean ± sample standard deviation [min–max] over the seeds, beside the thesis. '
              'Aim: mean within 1 point of Table 3.3 and 5 points of Table 3.2.', '', head,
              '| seeds | ' + ' | '.join(', '.join(str(r['seed']) for r in table[n]['seeds'])
                                      for n in names) + ' |',
              '| epochs trained | ' + ' | '.join(', '.join(str(r['epochs']) for r in
                                                          table[n]['seeds']) for n in names)
              + ' |']
    for key, title in ROWS:
        lines.append('| %s | %s |' % (title, ' | '.join(_spread(table[n]['over_seeds'].get(key))
                                                        for n in names)))
        lines.append('| thesis; aim met | %s |' % ' | '.join(
            '%s; %s' % ('%.2f' % THESIS_RESULTS[key][table[n]['thesis_column']]
                        if table[n]['thesis_column'] in THESIS_RESULTS[key] else '—',
                        {True: 'yes', False: '**no**', None: '—'}[
                            table[n]['aim_met'].get(key)]) for n in names))
    if beside:
        lines += beside_markdown(table, beside, head)
    lines += ['', '## Why the FGSM columns differ (diagnostic, beyond the thesis)', '',
              'The thesis ran Chainer on a GPU, whose sigmoid kernel computes tanh in float64 and '
              'keeps tiny nonzero outputs (and gradients) where the CPU\'s float32 sigmoid is '
              'exactly 0 (friendly/functions/cuda_sigmoid.py). Below, the same networks and test '
              'with that CUDA arithmetic of the sigmoid (in the victim and in the source; Elastic '
              'Sigmoid unchanged), beside the thesis. Mean ± sample standard deviation '
              '[min–max]. The black-box source\'s FGSM gradient is exactly 0 in %.2f %% of its '
              'entries (CUDA sigmoid: %.2f %%).' % (prov['source']['zero_gradient'],
                                                      prov['source']['zero_gradient' + CUDA]),
              '', head]
    for key, title, thesis_key in DIAGNOSTIC_ROWS:
        lines.append('| %s | %s |' % (title, ' | '.join(_spread(table[n]['over_seeds'].get(key))
                                                        for n in names)))
        if thesis_key:
            lines.append('| thesis | %s |' % ' | '.join(
                '%.2f' % THESIS_RESULTS[thesis_key][table[n]['thesis_column']]
                if table[n]['thesis_column'] in THESIS_RESULTS[thesis_key] else '—'
                for n in names))
    for name in names:
        if table[name].get('recorded'):
            lines += ['', '**%s** is a recorded measurement, not re-derived by this command: %s'
                      % (name, table[name]['recorded'])]
    lines += ['', 'Made by: `%s` at commit `%s`, on %s, %s.' % (
        prov['command'], prov['commit'], prov['device'], prov['date']),
        'Per network and seed (weights file and checksum, training commit, epochs, best '
        'validation epoch) see tables.json.', '']
    return '\n'.join(lines)


def beside_markdown(table, beside, head):
    """The section of tables.md showing another record's networks beside this table's: per row,
    its mean ± sd [min–max], the move of its mean from this table's, and the thesis."""
    names = list(table)
    theirs = beside['networks']
    lines = ['', '## Beside: the networks of `%s` (beyond the thesis)' % beside['file'], '',
             'Made by `%s` at commit `%s`, on %s; its note: %s' % (
                 beside['command'], beside['commit'], beside['device'], beside['note']), '',
             'Its mean ± sample standard deviation [min–max] over its seeds, and in brackets '
             'its mean minus the mean of the table above.', '', head,
             '| protocol | ' + ' | '.join(theirs[n]['protocol'] if n in theirs else '—'
                                        for n in names) + ' |',
             '| seeds | ' + ' | '.join(', '.join(map(str, theirs[n]['seeds'])) if n in theirs
                                     else '—' for n in names) + ' |']
    for key, title in ROWS:
        cells = []
        for n in names:
            if n not in theirs:
                cells.append('—')
                continue
            other = theirs[n]['over_seeds'][key]
            cells.append('%s (%+.2f)' % (_spread(other),
                                         other['mean'] - table[n]['over_seeds'][key]['mean']))
        lines.append('| %s | %s |' % (title, ' | '.join(cells)))
        lines.append('| thesis | %s |' % ' | '.join(
            '%.2f' % THESIS_RESULTS[key][table[n]['thesis_column']]
            if table[n]['thesis_column'] in THESIS_RESULTS[key] else '—' for n in names))
    return lines


# A run collapsed when its last epoch's training accuracy is this far below its best epoch's.
COLLAPSE_DROP = 0.10


def collapse(log):
    """Peak and final training accuracy, the largest Elastic Sigmoid scale, and the verdict."""
    accuracy = [e['main/accuracy'] for e in log]
    peak = int(np.argmax(accuracy))
    scales = [max(v for k, v in e.items() if k.startswith('main/elastic_scale_'))
              for e in log if any(k.startswith('main/elastic_scale_') for k in e)]
    return {'peak_training_accuracy': round(accuracy[peak], 4), 'peak_epoch': peak + 1,
            'final_training_accuracy': round(accuracy[-1], 4),
            'largest_scale': round(max(scales), 3) if scales else None,
            'collapsed': accuracy[-1] < accuracy[peak] - COLLAPSE_DROP}


def plot_elastic_scales(logs, path):
    """One panel per run: the three Elastic Sigmoid scales and training accuracy per epoch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(logs), figsize=(4.5 * len(logs), 3.4), squeeze=False)
    for ax, (title, log) in zip(axes[0], logs.items()):
        epochs = [e['epoch'] for e in log]
        for k in (1, 2, 3):
            ax.plot(epochs, [e['main/elastic_scale_%d' % k] for e in log], label='s, layer %d' % k)
        ax.set_xlabel('epoch')
        ax.set_ylabel('Elastic Sigmoid scale s')
        ax.set_title(title)
        acc = ax.twinx()
        acc.plot(epochs, [100 * e['main/accuracy'] for e in log], 'k:', label='train acc.')
        acc.set_ylim(0, 100)
        acc.set_ylabel('training accuracy (%)')
        ax.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format='png'))
    plt.close(fig)
