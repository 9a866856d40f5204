"""A robustness evaluation that can be trusted (beyond the thesis; Carlini et al. 2019).

The thesis (section 3.3, Table 3.2) measured robustness with one FGSM step; its numbers stay
exactly as measured (the two FGSM columns). Beside them, per test image and per attack, this
module records whether the victim still classifies the image correctly, and from that:

    worst case   an image counts as robust only if it is classified correctly clean and after
                 every attack run (the per-example minimum over attacks);
    curve        accuracy of every attack and of the worst case against epsilon (on a subset);
    checks       the sanity checks of Carlini et al. 2019 and Croce & Hein 2020: an unbounded
                 budget (epsilon = 255 reaches any image) must leave at most 10 %; iterative
                 attacks must beat the single step; the worst case must not rise with epsilon;
                 doubling the APGD steps and Square's queries must change it by less than a
                 point; a gradient-free or transfer attack beating every white-box gradient
                 attack (by more than 5 points), or FGSM far above the worst case (more than
                 20 points), flags gradient masking;
    zero gradient  the fraction of exactly-zero input-gradient entries on the clean images.
"""
import collections
import hashlib
import json
import os
import time

import chainer
import numpy as np

from friendly import attacks
from friendly.defaults import PROTOCOL

Column = collections.namedtuple('Column', [
    'attack',   # name in attacks.ATTACKS
    'on',       # the network the examples are made on: 'victim' or 'source'
    'label',    # table heading
    'kind',     # single-step gradient, iterative gradient, gradient-free, transfer
    'budget',   # which budget options apply: () or ('steps', 'restarts') or ('queries',)
])
COLUMNS = collections.OrderedDict([
    ('white_box_fgsm', Column('fgsm', 'victim', 'FGSM white-box (thesis)',
                              'single-step gradient', ())),
    ('black_box_fgsm', Column('fgsm', 'source', 'FGSM black-box (thesis)', 'transfer', ())),
    ('apgd', Column('apgd', 'victim', 'APGD margin', 'iterative gradient',
                    ('steps', 'restarts'))),
    ('apgd_ce', Column('apgd_ce', 'victim', 'APGD cross-entropy', 'iterative gradient',
                       ('steps', 'restarts'))),
    ('square', Column('square', 'victim', 'Square', 'gradient-free', ('queries',))),
    ('transfer', Column('apgd', 'source', 'transfer (APGD margin on the source)', 'transfer',
                        ('steps', 'restarts'))),
])
THESIS_COLUMNS = ('white_box_fgsm', 'black_box_fgsm')
WORST = 'worst_case'

CHECKS = {
    'unbounded_max_percent': 10.0,   # worst case at epsilon = 255 (any image reachable)
    'convergence_points': 1.0,       # |worst(doubled budgets) - worst| must stay below
    'transfer_margin_points': 5.0,   # gradient-free/transfer below best white-box gradient by
    'fgsm_gap_points': 20.0,         # FGSM above the worst case by more than this: masking
}
EVAL_BATCH = PROTOCOL['eval_batch_size']


def code_version():
    """A digest of the attack and evaluation code: cached results made by other code are
    never reused."""
    digest = hashlib.sha256()
    for module in (attacks.__file__, __file__):
        with open(module, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def percent(correct):
    return round(100.0 * float(np.mean(correct)), 2) if len(correct) else None


def depends_on_mode(net):
    return getattr(net, 'batch_renorms', None) is not None


class Cache:
    """Per-image results on disk, one .npy per key (a JSON-able dict): reruns and the
    --results rerun reuse what was computed; nothing is unpickled."""

    def __init__(self, folder):
        self.folder = folder

    def path(self, key):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return os.path.join(self.folder, digest + '.npy') if self.folder else None

    def get(self, key):
        path = self.path(key)
        if path and os.path.exists(path):
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                return None
        return None

    def put(self, key, value):
        path = self.path(key)
        if not path:
            return
        os.makedirs(self.folder, exist_ok=True)
        tmp = path + '.%d.tmp' % os.getpid()
        with open(tmp, 'wb') as f:
            np.save(f, value, allow_pickle=False)
        os.replace(tmp, path)
        with open(path[:-4] + '.json', 'w') as f:
            json.dump(key, f, sort_keys=True)


class Evaluator:
    """Runs the columns of COLUMNS on one (victim, source) pair and remembers the results.

    `budgets`: {'steps', 'restarts', 'queries'}; `chunk`: images handed to an attack at once
    (a multiple of the evaluation batch, 200: in 'batch' mode each 200 keep their own
    statistics); the thesis's FGSM always runs on the batches of 200, as Table 3.2 did.
    """

    def __init__(self, source, device, budgets, seed=0, cache=None, chunk=1000,
                 source_id='source', log=print):
        if chunk % EVAL_BATCH:
            raise ValueError('chunk must be a multiple of %d' % EVAL_BATCH)
        self.source = source
        self.device = device
        self.budgets = dict(budgets)
        self.seed = seed
        self.cache = cache or Cache(None)
        self.chunk = chunk
        self.source_id = source_id
        self.log = log
        self._made_on_source = {}   # transferred examples: the same for every victim
        self.code = code_version()

    def budget(self, key, scale=1):
        column = COLUMNS[key]
        return {name: self.budgets[name] * (scale if name in ('steps', 'queries') else 1)
                for name in column.budget}

    def correct(self, key, victim, victim_id, x, t, epsilon, bn_mode, scale=1):
        """Per image: the victim's prediction on the column's adversarial example is right."""
        column = COLUMNS[key]
        maker = victim if column.on == 'victim' else self.source
        budget = self.budget(key, scale)
        modal = depends_on_mode(victim) or depends_on_mode(maker)
        cache_key = {'column': key, 'attack': column.attack, 'victim': victim_id,
                     'source': self.source_id if column.on == 'source' else None,
                     'epsilon': int(epsilon), 'bn_mode': bn_mode if modal else 'any',
                     'budget': budget, 'seed': self.seed, 'images': len(x),
                     'chunk': self.chunk, 'code': self.code}
        found = self.cache.get(cache_key)
        if found is not None and len(found) == len(x):
            return found
        size = EVAL_BATCH if column.attack == 'fgsm' else self.chunk
        out = np.zeros(len(x), bool)
        for start in range(0, len(x), size):
            xb = self.device.send(x[start:start + size])
            tb = self.device.send(t[start:start + size])
            adv = self._examples(key, column, maker, xb, tb, epsilon, bn_mode, budget, start,
                                 remember=column.on == 'source' and not modal)
            out[start:start + len(xb)] = score(victim, adv, tb, bn_mode)
        self.cache.put(cache_key, out)
        return out

    def _examples(self, key, column, maker, xb, tb, epsilon, bn_mode, budget, start, remember):
        memo = (key, int(epsilon), start, len(xb), json.dumps(budget, sort_keys=True))
        if remember and memo in self._made_on_source:
            return self._made_on_source[memo]
        rng = attacks.attack_rng(self.seed, key, start, epsilon)
        adv = attacks.ATTACKS[column.attack](maker, xb, tb, int(epsilon), bn_mode, rng=rng,
                                             group=EVAL_BATCH, **budget)
        if remember:
            self._made_on_source[memo] = adv
        return adv


def score(net, x, t, bn_mode):
    """Per image, whether the network's arg-max output is the label; batches of 200 (the
    thesis's test batches, each normalised by its own statistics in 'batch' mode)."""
    right = []
    for start in range(0, len(x), EVAL_BATCH):
        y = attacks.predict(net, x[start:start + EVAL_BATCH], bn_mode)
        right.append(chainer.backend.CpuDevice().send(
            y.argmax(axis=1) == t[start:start + EVAL_BATCH]))
    return np.concatenate(right)


def zero_gradient_percent(net, x, t, bn_mode, device):
    """Percent of input-gradient entries that are exactly 0 on clean batches of 200, for the
    thesis's squared distance and for the margin of the pre-activation outputs."""
    zeros = {'squared_distance': 0, 'margin': 0}
    for start in range(0, len(x), EVAL_BATCH):
        xb = device.send(x[start:start + EVAL_BATCH])
        tb = device.send(t[start:start + EVAL_BATCH])
        g = attacks.loss_gradient(net, xb, tb, bn_mode)
        zeros['squared_distance'] += int((g == 0).sum())
        _, g, _ = attacks.logit_loss_gradient(net, xb, tb, bn_mode, 'margin', None)
        zeros['margin'] += int((g == 0).sum())
    return {k: round(100.0 * v / x.size, 2) for k, v in zeros.items()}


def summarise(correct, columns):
    """Accuracy (%) per column, the worst case, and which columns the worst case used."""
    worst = correct['clean'].copy()
    for key in columns:
        worst &= correct[key]
    result = {'clean': percent(correct['clean'])}
    result.update((key, percent(correct[key])) for key in columns)
    result[WORST] = percent(worst)
    return result, worst


def evaluate_network(evaluator, victim, victim_id, x, t, bn_mode, epsilon, columns,
                     curve_epsilons, subset):
    """Everything the table reports for one network in one test mode (see the module doc)."""
    log = evaluator.log
    n_sub = min(subset, len(x))
    seconds, begun = {}, time.time()
    clean = score(victim, evaluator.device.send(x), evaluator.device.send(t), bn_mode)
    correct = {'clean': clean}
    for key in columns:
        correct[key] = evaluator.correct(key, victim, victim_id, x, t, epsilon, bn_mode)
        log('    %-15s eps %3d: %6.2f %%' % (key, epsilon, percent(correct[key])))
    accuracy, worst = summarise(correct, columns)
    log('    %-15s eps %3d: %6.2f %%' % (WORST, epsilon, accuracy[WORST]))
    seconds['main'], begun = time.time() - begun, time.time()

    # accuracy against epsilon on the first n_sub images (at `epsilon`: the main run's)
    xs, ts = x[:n_sub], t[:n_sub]
    curve = {key: [] for key in ('clean',) + tuple(columns) + (WORST,)}
    for eps in curve_epsilons:
        if eps == epsilon:
            here = {k: v[:n_sub] for k, v in correct.items()}
        else:
            here = {'clean': clean[:n_sub]}
            for key in columns:
                here[key] = evaluator.correct(key, victim, victim_id, xs, ts, eps, bn_mode)
        row, _ = summarise(here, columns)
        for key in curve:
            curve[key].append(row[key])
        log('    curve eps %3d: worst %6.2f %%, FGSM %6.2f %%' % (
            eps, row[WORST], row.get('white_box_fgsm', float('nan'))))

    seconds['curve'], begun = time.time() - begun, time.time()

    # convergence: the same check with twice the APGD steps and Square queries, on the subset
    doubled = {'clean': clean[:n_sub]}
    for key in columns:
        if COLUMNS[key].budget and COLUMNS[key].budget[0] in ('steps', 'queries'):
            doubled[key] = evaluator.correct(key, victim, victim_id, xs, ts, epsilon, bn_mode,
                                             scale=2)
        else:
            doubled[key] = correct[key][:n_sub]
    base_row, _ = summarise({k: v[:n_sub] for k, v in correct.items()}, columns)
    doubled_row, _ = summarise(doubled, columns)
    change = round(doubled_row[WORST] - base_row[WORST], 2)
    convergence = {
        'images': n_sub, 'worst_case': base_row[WORST],
        'worst_case_doubled': doubled_row[WORST], 'change_points': change,
        'converged': abs(change) < CHECKS['convergence_points'],
        'doubled_accuracy': {k: doubled_row[k] for k in columns
                             if COLUMNS[k].budget},
        'budgets_doubled': {k: evaluator.budget(k, 2) for k in columns if COLUMNS[k].budget},
    }
    log('    convergence on %d images: worst %.2f -> %.2f with doubled budgets' % (
        n_sub, base_row[WORST], doubled_row[WORST]))
    seconds['convergence'], begun = time.time() - begun, time.time()
    zero = zero_gradient_percent(victim, x, t, bn_mode, evaluator.device)
    seconds['zero_gradient'] = time.time() - begun
    result = {
        'accuracy': accuracy,
        'curve': {'epsilons': list(curve_epsilons), 'images': n_sub, 'accuracy': curve},
        'convergence': convergence,
        'zero_gradient_percent': zero,
        # where the time went (cached results cost nothing): main table, curve, convergence
        'seconds_by_phase': {k: round(v, 2) for k, v in seconds.items()},
    }
    result['checks'] = checks(result, columns, epsilon)
    return result


def checks(result, columns, epsilon):
    """Verdicts of the checks of the module doc; each {'ok': bool or None, 'detail': text}."""
    accuracy, curve = result['accuracy'], result['curve']
    epsilons, rows = curve['epsilons'], curve['accuracy']
    out = collections.OrderedDict()

    if 255 in epsilons:
        k = epsilons.index(255)
        worst = rows[WORST][k]
        fgsm = rows['white_box_fgsm'][k] if 'white_box_fgsm' in rows else None
        out['unbounded'] = {
            'ok': worst <= CHECKS['unbounded_max_percent'],
            'detail': 'eps 255: worst case %.2f %% (must be <= %.0f %%); FGSM %s' % (
                worst, CHECKS['unbounded_max_percent'],
                '%.2f %%' % fgsm if fgsm is not None else 'not run')}
    else:
        out['unbounded'] = {'ok': None, 'detail': 'eps 255 not in the curve'}

    iterative = [k for k in columns if COLUMNS[k].kind == 'iterative gradient']
    if 'white_box_fgsm' in columns and iterative:
        bad = []
        for k, eps in enumerate(epsilons):
            best = min(rows[c][k] for c in iterative)
            if best > rows['white_box_fgsm'][k]:
                bad.append(eps)
        if min(accuracy[c] for c in iterative) > accuracy['white_box_fgsm'] \
                and epsilon not in bad:
            bad.append(epsilon)
        out['iterative_beats_single_step'] = {
            'ok': not bad,
            'detail': 'best iterative <= FGSM at every eps' if not bad else
                      'FGSM stronger than every iterative attack at eps %s'
                      % ', '.join(str(e) for e in sorted(bad))}
    else:
        out['iterative_beats_single_step'] = {'ok': None, 'detail': 'not run'}

    rises = [(epsilons[k], epsilons[k + 1]) for k in range(len(epsilons) - 1)
             if rows[WORST][k + 1] > rows[WORST][k]]
    out['monotone_in_epsilon'] = {
        'ok': not rises,
        'detail': 'worst case never rises with eps' if not rises else
                  'worst case rises from eps %s' % ', '.join('%d to %d' % r for r in rises)}

    conv = result['convergence']
    out['converged'] = {
        'ok': conv['converged'],
        'detail': 'doubled budgets move the worst case by %+.2f points on %d images%s' % (
            conv['change_points'], conv['images'],
            '' if conv['converged'] else ': did NOT converge')}

    gradient = [k for k in columns if COLUMNS[k].kind in ('single-step gradient',
                                                           'iterative gradient')]
    others = [k for k in columns if COLUMNS[k].kind in ('gradient-free', 'transfer')]
    reasons, causes = [], []
    if gradient and others:
        best_gradient = min(accuracy[k] for k in gradient)
        best_other = min(others, key=lambda k: accuracy[k])
        gap = best_gradient - accuracy[best_other]
        if gap > CHECKS['transfer_margin_points']:
            reasons.append('%s beats the best white-box gradient attack by %.2f points'
                           % (COLUMNS[best_other].label, gap))
            causes.append('gradient_free_or_transfer')
    if 'white_box_fgsm' in columns:
        gap = accuracy['white_box_fgsm'] - accuracy[WORST]
        if gap > CHECKS['fgsm_gap_points']:
            reasons.append('FGSM is %.2f points above the worst case' % gap)
            causes.append('fgsm_gap')
    out['gradient_masking'] = {
        'ok': not reasons,    # ok: no sign of masking
        'flag': bool(reasons),
        'causes': causes,
        'detail': '; '.join(reasons) if reasons else 'no sign of gradient masking'}
    zero = result['zero_gradient_percent']
    out['zero_gradient'] = {
        'ok': None,
        'detail': '%.2f %% of input-gradient entries exactly 0 (squared distance), %.2f %% '
                  '(margin)' % (zero['squared_distance'], zero['margin'])}
    return out
