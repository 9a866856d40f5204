"""The robustness record (beyond the thesis): the committed victims evaluated against the
black-box source in each Batch Renormalization test mode (robustness.evaluate_network), and
the record's document (robustness.json), its markdown table (robustness.md) and its figure
(accuracy_vs_epsilon.png), as friendly/robustness_eval.py writes them."""
import datetime
import json
import os
import shutil
import time

from friendly import robustness, weights
from friendly.defaults import NETWORKS, TEMPERATURES, THESIS_RESULTS
from friendly.networks import BN_MODE_MEANING
from runkit.provenance import atomic_write, git_commit, record_title, write_json, write_text
from runkit.runs import json_form

CURVE_EPSILONS = (0, 10, 26, 51, 77, 128, 179, 255)
FILES = ('robustness.md', 'robustness.json', 'accuracy_vs_epsilon.png')
SUBSET_ONLY = ('PD',)   # too slow for the whole test set on a CPU: always on the PD subset


def evaluate_store(evaluator, store, protocol, names, seeds, x_all, t_all, bn_modes, epsilon,
                   columns, epsilons, subset, pd_subset, earlier=None, commit=None,
                   convergence=True):
    """({label: record} of the victims `names` found in `store` (`seeds`: {name: seed} where
    not the default; a network of protocol `protocol`, or a capped variant of it), {name: why}
    of those skipped). Each record holds the network's facts and, per test mode of `bn_modes`,
    robustness.evaluate_network's result with the commit (`commit`, the checkout's when the run
    began: the record it writes makes the checkout dirty) and date it was `made`; a network
    without Batch Renormalization is evaluated once, its other modes `same_as` the first.
    `earlier`: the networks of a record made with the same settings and attack code
    (reusable); a result found there for the same weights is taken, not computed again.
    `convergence`: run the convergence check (evaluate_network)."""
    log = evaluator.log
    networks, skipped = {}, {}
    for name in names:
        seed = seeds.get(name, NETWORKS[name].seed)
        victim, entry = weights.load_stored(store, name, seed, protocol, evaluator.device)
        if victim is None:
            skipped[name] = 'seed %d (protocol %s) is not in the committed weights' % (
                seed, protocol)
            log('skipping %s: %s' % (name, skipped[name]))
            continue
        n = min(pd_subset, len(x_all)) if name in SUBSET_ONLY else len(x_all)
        x, t = x_all[:n], t_all[:n]
        label = name if seed == NETWORKS[name].seed else '%s (seed %d)' % (name, seed)
        if entry['protocol'] != protocol:
            label += ' [%s]' % entry['protocol']
        if n < len(x_all):
            label += ' (first %d test images)' % n
        record = {'network': name, 'seed': seed, 'file': entry['file'],
                  'protocol': entry['protocol'],
                  'sha256': entry['sha256'], 'test_images': n,
                  'batch_renorm': robustness.depends_on_mode(victim),
                  'epochs_trained': entry.get('epochs_trained'),
                  'thesis_clean': THESIS_RESULTS['clean'].get(name),
                  'thesis_white_box_fgsm': THESIS_RESULTS['white_box_fgsm'].get(name),
                  'thesis_black_box_fgsm': THESIS_RESULTS['black_box_fgsm'].get(name),
                  'modes': {}}
        for mode in bn_modes:
            same = next((m for m in record['modes'] if not record['batch_renorm']), None)
            if same:
                record['modes'][mode] = dict(record['modes'][same], same_as=same)
                continue
            result = _earlier_result((earlier or {}).get(label), entry['sha256'], mode)
            if result:
                log('%s, Batch Renormalization %r: taken from the earlier record (made at %s)'
                    % (label, mode, result['made']['commit']))
                record['modes'][mode] = result
                continue
            log('%s, Batch Renormalization %r, %d images' % (label, mode, n))
            begun = time.time()
            result = robustness.evaluate_network(
                evaluator, victim, entry['sha256'], x, t, mode, epsilon, columns, epsilons,
                min(subset, n), convergence)
            result['seconds'] = round(time.time() - begun, 1)
            result['same_as'] = None
            result['made'] = {'commit': commit or git_commit(), 'date': datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec='seconds')}
            record['modes'][mode] = result
        networks[label] = record
    return networks, skipped


def _earlier_result(record, sha256, mode):
    """The result for `mode` in an earlier record of the same weights, or None; not one made
    from uncommitted code (no commit reproduces it)."""
    if not record or record.get('sha256') != sha256:
        return None
    result = record['modes'].get(mode)
    if result and result.get('same_as'):
        result = record['modes'].get(result['same_as'])
    if not result or not result.get('made') or result['made']['commit'].endswith('+dirty'):
        return None
    return dict(result, same_as=None)


def reusable(path, settings):
    """{label: record} of the record at `path` if it was made with `settings` (test modes
    aside; the attack code's digest is among them), so that its results are those this run
    would compute; {} if there is no such record."""
    try:
        with open(path) as f:
            earlier = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(earlier, dict) or not isinstance(earlier.get('networks'), dict):
        return {}

    def same(s):
        return {k: v for k, v in json_form(s).items() if k != 'bn_modes'}
    return earlier['networks'] if same(earlier.get('settings') or {}) == same(settings) else {}


def parts(names, bn_modes, jobs):
    """How the evaluation is cut into parts, each written into the record as it finishes:
    [(victims, test modes)]. One process (jobs 1): a part per network, in the order of
    `names`. Several: a part per network, and per test mode of one with Batch
    Renormalization (without it, a network is evaluated once for every mode:
    evaluate_store), the dearest first so that the cheap ones fill in at the end: 'batch'
    mode of a network with Batch Renormalization (there a batch of 200 is attacked as long as
    one of its images is robust), the networks without it, then the other modes (as the
    record's seconds per part have them: A 'running' the cheapest by far)."""
    if jobs == 1:
        return [([n], list(bn_modes)) for n in names]
    split = [([n], [m]) for n in names if NETWORKS[n].batch_renorm for m in bn_modes]
    whole = [([n], list(bn_modes)) for n in names if not NETWORKS[n].batch_renorm]
    return ([p for p in split if p[1] == ['batch']] + whole
            + [p for p in split if p[1] != ['batch']])


def merge(done, names, bn_modes):
    """The (networks, skipped) of evaluate_store over the parts, as one call over all of them
    would have returned them: networks in the order of `names`, modes in that of `bn_modes`."""
    networks, skipped = {}, {}
    for part_networks, part_skipped in done:
        skipped.update(part_skipped)
        for label, record in part_networks.items():
            networks.setdefault(label, dict(record, modes={}))['modes'].update(record['modes'])
    for record in networks.values():
        record['modes'] = {m: record['modes'][m] for m in bn_modes if m in record['modes']}
    order = sorted(networks, key=lambda label: names.index(networks[label]['network']))
    return ({label: networks[label] for label in order},
            {name: skipped[name] for name in names if name in skipped})


def pending(parts_left, absent=()):
    """['RS (batch)', 'S', ...]: what the parts not finished yet will evaluate (networks
    `absent` from the store aside)."""
    return ['%s (%s)' % (name, '/'.join(modes)) if NETWORKS[name].batch_renorm else name
            for names, modes in parts_left for name in names if name not in absent]


def document(settings, networks, skipped, prov, left=()):
    """robustness.json: the settings, the columns run, every network's record, provenance,
    and what is `left` to evaluate (pending) while the run goes on or after it stopped."""
    return {'about': 'Robustness beyond the thesis: reliable attacks beside the thesis\'s '
                     'FGSM (friendly/robustness_eval.py).',
            'settings': settings, 'columns': {k: robustness.COLUMNS[k]._asdict()
                                              for k in settings['columns']},
            'networks': networks, 'skipped': skipped, 'pending': list(left),
            'provenance': prov}


def _cell(value):
    return '—' if value is None else '%.2f' % value


def _verdict(check):
    if 'flag' in check:
        return ('FLAGGED: ' if check['flag'] else '') + check['detail']
    if check['ok'] is None:
        return check['detail']
    return ('pass: ' if check['ok'] else 'FAIL: ') + check['detail']


def markdown(document):
    settings, networks = document['settings'], document['networks']
    columns = settings['columns']
    budgets = settings['budgets']
    lines = [
        record_title('# Robustness beyond the thesis: reliable attacks beside Table 3.2',
                     document['provenance']['commit']), '',
        'Accuracy (%%) on the MNIST test images at eps = %d (pixel units, 0–255; the thesis\'s '
        '0.3). The two FGSM columns are the thesis\'s attack (section 3.3, Table 3.2: one step '
        'on the squared distance of the outputs, Goodfellow et al. 2015), measured exactly as '
        'friendly/evaluate.py measures them; every other column is **beyond the thesis**: APGD '
        '(Croce & Hein 2020; %d steps, %d random start(s), step 2·eps halved at checkpoints, '
        'momentum 0.75) on the margin or the cross-entropy of the pre-activation outputs; '
        'targeted APGD (APGD-T, same paper; one run per target class, the %d classes with the '
        'highest clean logits besides the label, %d start(s) each, on the targeted margin '
        'z_t − z_y); the same two steered by surrogate gradients (friendly/surrogates.py; '
        '**tempered**: a float64 copy whose hidden sigmoids compute sigmoid(a / T), one run '
        'per T in %s, which lets the saturated units give a gradient again; '
        '**CUDA-sigmoid**: the network\'s own parameters with the thesis GPU\'s sigmoid '
        'arithmetic, whose saturated units keep the gradient that numpy\'s float32 sigmoid '
        'rounds to 0; **float64**: a float64 copy of the network; success and score always on '
        'the real network); Square '
        'Attack (Andriushchenko et al. 2020; %d queries, gradient-free); and APGD examples made '
        'on the black-box source and shown to the victim (transfer). All adversarial images '
        'have integer pixels in [0, 255] within the eps-ball. **Worst case**: an image counts '
        'only if it is classified correctly clean and after every attack (Carlini et al. 2019). '
        'The attacks run in the order of the columns, cheapest first, and each after the '
        'thesis\'s FGSM runs only on the images still robust, as AutoAttack does (in the '
        '\'batch\' test mode an image\'s output depends on its batch of 200: there on the '
        'batches that still hold a robust image); its column is the robust accuracy after it '
        'and every column before it (**cumulative**). Converged: every budget doubled (steps, '
        'restarts, targets, '
        'queries) moves the worst case by at most %g points at every eps of the curve (%s).'
        % (
            settings['epsilon'], budgets['steps'], budgets['restarts'], budgets['targets'],
            budgets['target_restarts'], ', '.join(str(t) for t in TEMPERATURES),
            budgets['queries'], robustness.CHECKS['convergence_points'],
            'checked by this run' if settings.get('convergence') else
            'not checked by this run: robustness_eval.py --convergence checks it'), '']
    if settings['test_images'] != 10000:
        lines += ['**Only the first %d test images.**' % settings['test_images'], '']
    if document.get('pending'):
        lines += ['**Incomplete: %s not evaluated yet.** The same command completes this '
                  'record; what is here is kept, not computed again.'
                  % ', '.join(document['pending']), '']
    for mode in settings['bn_modes']:
        lines += ['## Batch Renormalization %r: %s%s' % (
            mode, BN_MODE_MEANING[mode], ' — the thesis\'s test mode' if mode == 'batch'
            else ''), '']
        head = ['network', 'clean'] + [robustness.COLUMNS[c].label for c in columns] + [
            '**worst case**', 'eps 255: worst / FGSM', 'converged (largest change)',
            'gradient masking', 'zero gradient (%)']
        lines += ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
        for label, record in networks.items():
            result = record['modes'].get(mode)
            if result is None:
                continue
            acc, checks = result['accuracy'], result['checks']
            curve = result['curve']
            if 255 in curve['epsilons']:
                k = curve['epsilons'].index(255)
                unbounded = '%s / %s%s' % (
                    _cell(curve['accuracy']['worst_case'][k]),
                    _cell(curve['accuracy'].get('white_box_fgsm', [None] * (k + 1))[k]),
                    '' if checks['unbounded']['ok'] else ' FAIL')
            else:
                unbounded = '—'
            conv = result['convergence']
            converged = 'not checked' if conv is None else '%s (%+.2f)' % (
                'yes' if conv['converged'] else '**did not converge**', conv['change_points'])
            cells = [label, _cell(acc['clean'])] + [
                _cell(acc.get(c)) + (' ᶜ' if c not in robustness.THESIS_COLUMNS
                                     and c in acc else '') for c in columns] + [
                '**%s**' % _cell(acc['worst_case']), unbounded,
                converged,
                '**flagged**' if checks['gradient_masking']['flag'] else 'no',
                '%.2f' % result['zero_gradient_percent']['squared_distance']]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines += ['', 'ᶜ cumulative: robust accuracy after this attack and every column before '
                  'it (the robust-only schedule: each attack runs on the images still robust; '
                  "in 'batch' mode, on the batches of 200 with an image still robust). "
                  '— : the column does not run on this network (its checks below say why).', '',
                  'Checks (curve and convergence on the first %d images):' % min(
                      settings['subset'], settings['test_images']), '']
        for label, record in networks.items():
            result = record['modes'].get(mode)
            if result is None:
                continue
            same = ('' if record['batch_renorm'] else
                    ' (no Batch Renormalization: the same in every mode)')
            lines.append('- **%s**%s: %s' % (label, same, '; '.join(
                '%s — %s' % (name.replace('_', ' '), _verdict(check))
                for name, check in result['checks'].items())))
            for key, why in (result.get('not_applicable') or {}).items():
                lines.append('  - — %s: not run (%s)' % (robustness.COLUMNS[key].label, why))
            if result['convergence'] and not result['convergence']['converged']:
                lines.append('  - **did not converge**: its worst case is an upper bound '
                             'that more steps, restarts, targets or queries still lower.')
            if result.get('seconds_by_column'):
                lines.append('  - seconds per attack (main table, curve%s; the '
                             "source's examples are made once for all and counted where "
                             'they were made): ' % (
                                 ' and convergence' if result['convergence'] else '')
                             + ', '.join('%s %.0f' % kv
                                         for kv in result['seconds_by_column'].items()))
        lines.append('')
    lines += ['Thesis Table 3.2 for comparison (percent, its own networks): ' + ', '.join(
        '%s %s / %s' % (r['network'], _cell(r['thesis_white_box_fgsm']),
                        _cell(r['thesis_black_box_fgsm']))
        for r in networks.values()) + ' (white-box / black-box FGSM).', '']
    if document['skipped']:
        lines += ['Skipped: ' + '; '.join('%s (%s)' % kv for kv in document['skipped'].items())
                  + '.', '']
    prov = document['provenance']
    reused = ''
    if prov.get('cached_results_read'):
        reused = ('; %d per-image results read from the cache of an earlier run with the '
                  'same attack code, weights and settings, %d computed' % (
                      prov['cached_results_read'], prov['results_computed']))
    lines += ['Figure: `accuracy_vs_epsilon.png`. Made by: `%s` at commit `%s`, on %s, %s '
              '(%.0f s%s).' % (prov['command'], prov['commit'], prov['device'], prov['date'],
                               prov['wall_time_s'], reused), '']
    earlier = sorted({'%s (%s, %s)' % (label, mode, result['made']['commit'][:12])
                      for label, record in networks.items()
                      for mode, result in record['modes'].items()
                      if not result.get('same_as') and result.get('made')
                      and result['made']['commit'] != prov['commit']})
    if earlier:
        lines += ['Taken from the record of an earlier run of this command (same settings, '
                  'weights and attack code), with the commit that computed them: %s.'
                  % '; '.join(earlier), '']
    return '\n'.join(lines)


def write(document, out, results=None):
    """robustness.md, robustness.json and the figure into `out`, each written whole, and copied
    into `results` when given; the markdown text."""
    text = markdown(document)
    write_json(os.path.join(out, 'robustness.json'), document)
    write_text(os.path.join(out, 'robustness.md'), text)
    plot(document, os.path.join(out, 'accuracy_vs_epsilon.png'))
    for name in FILES if results else ():
        atomic_write(os.path.join(results, name),
                     lambda tmp, made=os.path.join(out, name): shutil.copyfile(made, tmp))
    return text


STYLES = {'white_box_fgsm': ('tab:blue', '-', 'o'), 'black_box_fgsm': ('tab:blue', ':', 'o'),
          'apgd': ('tab:red', '-', 's'), 'apgd_ce': ('tab:orange', '-', 's'),
          'apgd_t': ('tab:brown', '-', 'D'), 'apgd_cuda': ('tab:red', '--', 's'),
          'apgd_t_cuda': ('tab:brown', '--', 'D'), 'apgd_f64': ('tab:red', '-.', 's'),
          'apgd_t_f64': ('tab:brown', '-.', 'D'), 'apgd_soft': ('tab:pink', '-', 's'),
          'apgd_t_soft': ('tab:pink', '--', 'D'),
          'square': ('tab:green', '-', '^'), 'transfer': ('tab:purple', ':', 'v'),
          'worst_case': ('black', '-', None)}


def plot(document, path):
    """Accuracy against eps: one panel per network and test mode, one curve per attack."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    modes = document['settings']['bn_modes']
    names = list(document['networks'])
    fig, axes = plt.subplots(len(modes), len(names), figsize=(max(3.2 * len(names) + 0.6, 9),
                                                               2.9 * len(modes) + 1.4),
                             squeeze=False, sharex=True, sharey=True)
    handles = {}
    for row, mode in enumerate(modes):
        for col, label in enumerate(names):
            ax = axes[row][col]
            result = document['networks'][label]['modes'].get(mode)
            record = document['networks'][label]
            ax.set_title('%s, %s statistics%s' % (
                label, 'batch' if mode == 'batch' else 'running',
                '' if record['batch_renorm'] else ' (no BN: same)'), fontsize=9)
            ax.grid(alpha=0.3)
            if result is None:
                continue
            curve = result['curve']
            for key, values in curve['accuracy'].items():
                if key == 'clean':
                    continue
                color, style, marker = STYLES.get(key, ('gray', '-', None))
                text = 'worst case' if key == 'worst_case' else \
                    robustness.COLUMNS[key].label
                line, = ax.plot(curve['epsilons'], values, color=color, linestyle=style,
                                marker=marker, markersize=3,
                                linewidth=2.2 if key == 'worst_case' else 1.2, label=text)
                handles[text] = line
            ax.axvline(document['settings']['epsilon'], color='gray', linewidth=0.8,
                       linestyle='--')
            ax.set_xlim(0, 255)
            ax.set_ylim(-2, 102)
            if row == len(modes) - 1:
                ax.set_xlabel('eps (pixels, 0-255)')
            if col == 0:
                ax.set_ylabel('accuracy (%)')
    fig.legend(list(handles.values()), list(handles), loc='lower center',
               ncol=min(len(handles), 4), fontsize=8, frameon=False)
    images = {r['modes'][m]['curve']['images'] for r in document['networks'].values()
              for m in r['modes']}
    fig.suptitle('MNIST test accuracy against the L-inf radius eps (first %s test images; '
                 'dashed: eps = %d)\nFGSM: the thesis\'s attack; the others: beyond the thesis; '
                 'worst case: correct after every attack'
                 % ('/'.join(str(i) for i in sorted(images)), document['settings']['epsilon']),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.12 if len(handles) > 4 else 0.07, 1, 0.93))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format='png'))
    plt.close(fig)
