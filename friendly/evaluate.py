"""Reproduce thesis Tables 3.2 and 3.3: train every network, attack it, compare with the thesis.

    python friendly/evaluate.py --table --jobs 2          # thesis protocol (hours on a CPU)
    python friendly/evaluate.py --table --quick           # reduced protocol, minutes, labelled
    python friendly/evaluate.py --table --epochs-for PD=3 # cap one network's epochs

Each network trains in runs/friendly/<protocol>/<name> (finished runs with identical settings
are reused, interrupted ones resume); each evaluation is cached beside it in eval.json, keyed
by everything it depends on (both models' checksums included). The tables are printed and
written to results/tables.md and results/tables.json with their provenance.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import time

from friendly import attack
from runkit.cli import UserError, run_main
from friendly.defaults import PROTOCOL, QUICK, SOURCE, THESIS_RESULTS, VICTIMS
from friendly.networks import BN_MODE_MEANING, BN_MODES
from runkit.provenance import provenance, write_json, write_text
from friendly.train import load_model, run_folder, same_settings, settings_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = (('white_box_fgsm', 'Table 3.2 white-box FGSM'),
        ('black_box_fgsm', 'Table 3.2 black-box FGSM'),
        ('clean', 'Table 3.3 clean'))


def finished(folder, settings):
    """The run record of `folder` if it finished with exactly these settings, else None."""
    path = os.path.join(folder, 'settings.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    ok = record.get('finished') and same_settings(record['settings'], settings)
    return record if ok else None


def train_command(settings, device, quick):
    """The friendly/train.py command line that produces `settings`."""
    command = [sys.executable, os.path.join(ROOT, 'friendly', 'train.py'), settings['network'],
               '--seed', str(settings['seed']), '--epochs', str(settings['max_epochs']),
               '--out', run_folder(settings), '--device', device, '--resume', '--no-progress']
    if quick:
        command.append('--quick')
    if settings['train_subset']:
        command += ['--train-subset', str(settings['train_subset'])]
    return command


def train_all(plan, device, quick, jobs):
    """Train (or resume) every run of `plan` not yet finished, `jobs` at a time."""
    todo = [s for s in plan if not finished(run_folder(s), s)]

    def run(settings):
        folder = run_folder(settings)
        os.makedirs(folder, exist_ok=True)
        print('training %s in %s (log: %s/train.log)' % (settings['network'], folder, folder),
              flush=True)
        with open(os.path.join(folder, 'train.log'), 'a') as log:
            code = subprocess.call(train_command(settings, device, quick), stdout=log,
                                   stderr=subprocess.STDOUT)
        if code != 0:
            raise UserError('training %s failed (exit %d); see %s/train.log'
                            % (settings['network'], code, folder))
        print('finished %s' % settings['network'], flush=True)

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        for future in [pool.submit(run, s) for s in todo]:
            future.result()


def checksum(folder):
    digest = hashlib.sha256()
    with open(os.path.join(folder, 'model.npz'), 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def evaluate_run(settings, source_settings, eval_settings, device, data):
    """Clean/white-box/black-box accuracy of one trained network, cached in eval.json."""
    folder = run_folder(settings)
    key = dict(eval_settings, victim=settings, source=source_settings,
               source_sha256=checksum(run_folder(source_settings)))
    cache = os.path.join(folder, 'eval.json')
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
        if same_settings(cached['key'], dict(key, victim_sha256=cached['key'].get(
                'victim_sha256'))) and (not os.path.exists(os.path.join(folder, 'model.npz'))
                                        or cached['key']['victim_sha256'] == checksum(folder)):
            return cached
    key['victim_sha256'] = checksum(folder)
    victim = load_model(folder, device)[0]
    source = load_model(run_folder(source_settings), device)[0]
    started = time.time()
    accuracy = attack.evaluate(victim, data[0], data[1], source, eval_settings['attacks'],
                               eval_settings['epsilon'], eval_settings['bn_mode'],
                               device=device, seed=eval_settings['seed'])
    result = {'key': key, 'accuracy_percent': accuracy,
              'provenance': provenance(device, seconds=round(time.time() - started, 1))}
    write_json(cache, result)
    return result


def diff(ours, theirs):
    return '%+.2f' % (ours - theirs) if theirs is not None else ''


def markdown(networks, protocol_note, prov):
    names = list(networks)
    lines = ['# Thesis Tables 3.2 and 3.3, reproduced', '', protocol_note, '',
             'Accuracy (%) on the MNIST test images; `ours / thesis (difference)`. '
             'Epochs: the epochs each network actually trained.', '',
             '| | ' + ' | '.join(names) + ' |', '|---' * (len(names) + 1) + '|',
             '| epochs | ' + ' | '.join(str(networks[n]['epochs']) for n in names) + ' |',
             '| protocol | ' + ' | '.join(networks[n]['protocol'] for n in names) + ' |',
             '| trained on | ' + ' | '.join(str(networks[n]['train_device']) for n in names) + ' |',
             '| attacked on | ' + ' | '.join(networks[n]['eval_device'] for n in names) + ' |']
    for key, title in ROWS:
        cells = []
        for n in names:
            ours = networks[n].get(key)
            theirs = THESIS_RESULTS[key].get(networks[n]['thesis_column'])
            cells.append('—' if ours is None else '%.2f / %s (%s)' % (
                ours, '%.2f' % theirs if theirs is not None else '—', diff(ours, theirs)))
        lines.append('| %s | %s |' % (title, ' | '.join(cells)))
    extra = sorted({k for n in names for k in networks[n] if k.endswith('_pgd')})
    for key in extra:
        lines.append('| %s (beyond the thesis) | %s |' % (key.replace('_', ' '), ' | '.join(
            '%.2f' % networks[n][key] if key in networks[n] else '—' for n in names)))
    lines += ['', 'Made by: `%s` at commit `%s`, on %s, %s.' % (
        prov['command'], prov['commit'], prov['device'], prov['date']), '',
        'Evaluations are cached per run (eval.json) and reused when nothing they depend on '
        'changed, so a column may have been attacked on another device than the command ran on.',
        'Per network (seed, commits, best validation epoch, training time) see tables.json.', '']
    return '\n'.join(lines)


def print_table(networks, protocol_note):
    print('\n' + protocol_note)
    names = list(networks)
    print('%-26s' % '' + ''.join('%24s' % n for n in names))
    print('%-26s' % 'epochs trained' + ''.join('%24s' % networks[n]['epochs'] for n in names))
    for key, title in ROWS:
        row = []
        for n in names:
            ours = networks[n].get(key)
            theirs = THESIS_RESULTS[key].get(networks[n]['thesis_column'])
            row.append('%24s' % ('—' if ours is None else '%.2f/%s %s' % (
                ours, '%.2f' % theirs if theirs is not None else '—', diff(ours, theirs))))
        print('%-26s' % title + ''.join(row))
    print('(ours/thesis difference, percent)')


def parse_pairs(pairs, what):
    out = {}
    for pair in pairs or []:
        name, _, value = pair.partition('=')
        if name not in VICTIMS + (SOURCE,) or not value.isdigit() or int(value) < 1:
            raise UserError('bad %s %r: expected NAME=N with NAME one of %s and N >= 1'
                            % (what, pair, ', '.join(VICTIMS + (SOURCE,))))
        out[name] = int(value)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--table', action='store_true', help='train, attack, print and write '
                        'Tables 3.2/3.3')
    parser.add_argument('--quick', action='store_true', help='reduced protocol (%d epochs on %d '
                        'images, %d test images): minutes on a CPU, NOT the thesis protocol'
                        % (QUICK['max_epochs'], QUICK['train_subset'], QUICK['test_subset']))
    parser.add_argument('--epochs', type=int, help='maximum epochs for every network')
    parser.add_argument('--epochs-for', nargs='+', metavar='NAME=N',
                        help='maximum epochs for some networks, e.g. PD=3')
    parser.add_argument('--extra-seed', nargs='+', metavar='NAME=SEED', default=[],
                        help='also train and evaluate NAME with another seed, e.g. S=3')
    parser.add_argument('--networks', nargs='+', default=list(VICTIMS), choices=VICTIMS,
                        help='victims to include (default: all six)')
    parser.add_argument('--train-subset', type=int, help='train on N images (not the thesis)')
    parser.add_argument('--test-subset', type=int, help='attack the first N test images')
    parser.add_argument('--attack', nargs='+', default=['fgsm'], choices=sorted(attack.ATTACKS),
                        help='attacks (thesis: fgsm; pgd is beyond the thesis and slow)')
    parser.add_argument('--bn-mode', default=PROTOCOL['bn_test_mode'], choices=BN_MODES,
                        help="Batch Renormalization at test time (thesis: 'batch'; see "
                             "friendly/networks.py)")
    parser.add_argument('--jobs', type=int, default=1, help='networks trained in parallel')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    parser.add_argument('--results', default=os.path.join(ROOT, 'results'),
                        help='folder for tables.md and tables.json')
    parser.add_argument('--mnist-dir', help='MNIST folder')
    args = parser.parse_args()
    if not args.table:
        raise UserError('nothing to do: pass --table')
    for flag in ('epochs', 'train_subset', 'test_subset', 'jobs'):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError('--%s must be at least 1' % flag.replace('_', '-'))
    if args.mnist_dir:
        os.environ[attack.mnist.ENV_VAR] = args.mnist_dir  # the train.py subprocesses too
    epochs_for = parse_pairs(args.epochs_for, '--epochs-for')
    extra = [(name, seed) for name, seed in parse_pairs(args.extra_seed, '--extra-seed').items()]
    started = time.time()

    def settings(name, seed=None):
        return settings_for(name, args.quick, epochs_for.get(name, args.epochs), seed,
                            args.train_subset)
    columns = [(n, n, settings(n)) for n in args.networks]
    columns += [('%s (seed %d)' % (n, s), n, settings(n, s)) for n, s in extra]
    source = settings(SOURCE)
    train_all([source] + [c[2] for c in columns], args.device, args.quick, args.jobs)

    test_subset = args.test_subset or (QUICK['test_subset'] if args.quick else None)
    data = attack.test_set(test_subset, args.mnist_dir)
    eval_settings = {'attacks': args.attack, 'epsilon': PROTOCOL['epsilon'],
                     'bn_mode': args.bn_mode, 'test_images': len(data[0]), 'seed': 0,
                     'batch_size': PROTOCOL['eval_batch_size']}
    networks = {}
    for label, name, s in columns:
        result = evaluate_run(s, source, eval_settings, args.device, data)
        record = finished(run_folder(s), s) or {}
        networks[label] = dict(
            result['accuracy_percent'], thesis_column=name, protocol=s['protocol'],
            epochs=record.get('epochs_trained'), max_epochs=s['max_epochs'], seed=s['seed'],
            best_validation_epoch=record.get('best_validation_epoch'),
            train_wall_time_s=record.get('wall_time_s'),
            train_device=record.get('provenance', {}).get('device'),
            train_commit=record.get('provenance', {}).get('commit'),
            eval_device=result['provenance']['device'])
    protocols = sorted({n['protocol'] for n in networks.values()})
    note = ('**Protocol: %s.** ' % ', '.join(protocols)) + (
        'QUICK reduced protocol — not comparable with the thesis.' if args.quick else
        'Thesis protocol (SPEC Part A); a network whose protocol carries -e<N> was capped at N '
        'epochs.')
    if args.bn_mode != PROTOCOL['bn_test_mode']:
        note += (' **Not the thesis test mode:** Batch Renormalization in %r mode (%s).'
                 % (args.bn_mode, BN_MODE_MEANING[args.bn_mode]))
    if len(data[0]) != 10000:
        note += ' Attacked on the first %d test images only.' % len(data[0])
    if args.attack != ['fgsm']:
        note += ' Attacks beyond the thesis: %s.' % ', '.join(a for a in args.attack
                                                              if a != 'fgsm')
    prov = provenance(args.device, wall_time_s=round(time.time() - started, 1),
                      source={'seed': source['seed'], 'protocol': source['protocol']},
                      evaluation=eval_settings)
    print_table(networks, note)
    write_json(os.path.join(args.results, 'tables.json'),
               {'networks': networks, 'thesis': THESIS_RESULTS, 'provenance': prov})
    write_text(os.path.join(args.results, 'tables.md'), markdown(networks, note, prov))
    print('wrote %s/tables.md and tables.json' % args.results)


if __name__ == '__main__':
    run_main(main)
