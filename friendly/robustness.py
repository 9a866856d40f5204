"""A robustness evaluation that can be trusted (beyond the thesis; Carlini et al. 2019).

The thesis (section 3.3, Table 3.2) measured robustness with one FGSM step; its numbers stay
exactly as measured (the two FGSM columns, which friendly/tables.py reads too: every accuracy
under attack in friendly/ is an Evaluator's). Beside them, per test image and per attack, this
module records whether the victim still classifies the image correctly, and from that:

    worst case   an image counts as robust only if it is classified correctly clean and after
                 every attack run (the per-example minimum over attacks);
    curve        accuracy of every attack and of the worst case against epsilon (on a subset);
    checks       the sanity checks of Carlini et al. 2019 and Croce & Hein 2020: an unbounded
                 budget (epsilon = 255 reaches any image) must leave at most 10 %; iterative
                 attacks must beat the single step; the worst case must not rise with epsilon;
                 doubling every budget (APGD steps and restarts, APGD-T targets and restarts,
                 Square's queries) must move it by at most half a point at every epsilon of the
                 curve; a gradient-free or transfer attack beating every white-box gradient
                 attack (by more than 5 points), or FGSM far above the worst case (more than
                 20 points), flags gradient masking;
    zero gradient  the fraction of exactly-zero input-gradient entries on the clean images.

The schedule (Croce & Hein 2020's AutoAttack): the columns run in the order of COLUMNS, the
cheapest first, and each attack after the thesis's FGSM runs only on the images still robust
after the ones before it ('robust-only'), so that the expensive attacks see only the few images
the cheap ones leave. An image's verdict under an attack does not depend on which other images
are attacked (attacks.py draws every random number for the whole batch), so the worst case is
the one of running every attack on every image, at a fraction of the cost (exactly so with one
BLAS thread; with several, the size of a batch changes the rounding of its products, and an
image on the edge can come out otherwise: 1 of 400 in the test's case). Where images are
independent (attacks.independent: 'running' mode, or no Batch Renormalization) the unit left
out is an image. In 'batch' mode an image's output depends on the other 199 images of its
batch, so leaving out broken images would change the statistics the remaining ones are
classified with: there the unit is the batch of 200 ('robust-only, by batch'), attacked whole
as long as one of its images is robust, and left out once none is. Each column then reports
the robust accuracy after it and every column before it (cumulative). The thesis's two FGSM
columns always run on every image and report their own accuracy, exactly as Table 3.2
measured them.
"""
import collections
import hashlib
import json
import os
import time

import chainer
import numpy as np

from friendly import attacks, networks, surrogates
from friendly.functions import cuda_sigmoid
from friendly.defaults import EVALUATION, PROTOCOL, TEMPERATURES
from runkit import renorm

Column = collections.namedtuple('Column', [
    'attack',     # name in attacks.ATTACKS
    'on',         # the network the examples are made on: 'victim' or 'source'
    'label',      # table heading
    'kind',       # single-step gradient, iterative gradient, gradient-free (attacks.KINDS) for
                  # examples made on the victim; transfer for those made on the source
    'budget',     # the budgets (names of defaults.EVALUATION) the attack takes
    'surrogate',  # None, or whose gradients steer it (surrogates.KINDS): 'cuda', 'float64',
                  # 'tempered'
    'options',    # fixed keyword options of the attack, e.g. the loss
])


def _column(attack, on, label, budget=(), surrogate=None, **options):
    kind = attacks.KINDS[attack] if on == 'victim' else 'transfer'
    return Column(attack, on, label, kind, tuple(budget), surrogate, options)


APGD_BUDGET = ('steps', 'restarts')
APGD_T_BUDGET = ('steps', 'target_restarts', 'targets')
# In the order they run (module doc): cheapest first. Beyond the thesis but the first two.
COLUMNS = collections.OrderedDict([
    ('white_box_fgsm', _column('fgsm', 'victim', 'FGSM white-box (thesis)')),
    ('black_box_fgsm', _column('fgsm', 'source', 'FGSM black-box (thesis)')),
    ('transfer', _column('apgd', 'source', 'transfer (APGD margin on the source)',
                         APGD_BUDGET)),
    ('apgd', _column('apgd', 'victim', 'APGD margin', APGD_BUDGET)),
    ('apgd_ce', _column('apgd_ce', 'victim', 'APGD cross-entropy', APGD_BUDGET)),
    # Croce & Hein 2020's targeted APGD; the targeted margin z_t - z_y broke 2 points more of
    # S's first 500 test images than their targeted DLR at eps 26 and at eps 77
    ('apgd_t', _column('apgd_t', 'victim', 'APGD-T targeted margin', APGD_T_BUDGET,
                       loss='margin_targeted')),
    # surrogate gradients (attacks.py, surrogates.py), every image scored on the real network:
    # tempered sigmoids first (the strongest: on S's first 500 test images at eps 26 they left
    # 4.8 % where float64 gradients left 43 %), so that the others see few images
    ('apgd_soft', _column('apgd', 'victim', 'APGD margin, tempered-sigmoid gradients',
                          APGD_BUDGET, 'tempered')),
    ('apgd_t_soft', _column('apgd_t', 'victim',
                            'APGD-T targeted margin, tempered-sigmoid gradients',
                            APGD_T_BUDGET, 'tempered', loss='margin_targeted')),
    # the thesis GPU's sigmoid arithmetic
    ('apgd_cuda', _column('apgd', 'victim', 'APGD margin, CUDA-sigmoid gradients', APGD_BUDGET,
                          'cuda')),
    ('apgd_t_cuda', _column('apgd_t', 'victim', 'APGD-T targeted margin, CUDA-sigmoid gradients',
                            APGD_T_BUDGET, 'cuda', loss='margin_targeted')),
    # float64: on S's first 1,000 test images at eps 26 these two broke 16 images (1.6
    # points) that every column above had left
    ('apgd_f64', _column('apgd', 'victim', 'APGD margin, float64 gradients', APGD_BUDGET,
                         'float64')),
    ('apgd_t_f64', _column('apgd_t', 'victim', 'APGD-T targeted margin, float64 gradients',
                           APGD_T_BUDGET, 'float64', loss='margin_targeted')),
    ('square', _column('square', 'victim', 'Square', ('queries',))),
])
THESIS_COLUMNS = ('white_box_fgsm', 'black_box_fgsm')
# a budget's name -> the attack's keyword (APGD-T's restarts per target are its `restarts`)
BUDGET_KEYWORD = {'target_restarts': 'restarts'}
CLASSES = PROTOCOL['hidden'][-1]
WORST = 'worst_case'
ROBUST_ONLY, ROBUST_BATCHES = 'robust-only', 'robust-only, by batch'

CHECKS = {
    'unbounded_max_percent': 10.0,   # worst case at epsilon = 255 (any image reachable)
    'convergence_points': 0.5,       # |worst(doubled budgets) - worst| at most this
    'transfer_margin_points': 5.0,   # gradient-free/transfer below best white-box gradient by
    'fgsm_gap_points': 20.0,         # FGSM above the worst case by more than this: masking
}
EVAL_BATCH = PROTOCOL['eval_batch_size']
TRANSFER = 'transfer'


def attack_columns(names, black_box):
    """Columns of one attack each, in the order of `names` (attacks.ATTACKS, or TRANSFER),
    with the attacks' own default budgets: made on the victim ('white_box_<name>') and, with
    `black_box`, on the source ('black_box_<name>'); TRANSFER is APGD made on the source."""
    columns = collections.OrderedDict()
    for name in names:
        if name == TRANSFER:
            columns[TRANSFER] = _column('apgd', 'source', 'transfer (APGD on the source)')
            continue
        columns['white_box_' + name] = _column(name, 'victim', name + ' white-box')
        if black_box:
            columns['black_box_' + name] = _column(name, 'source', name + ' black-box')
    return columns


def code_version():
    """A digest of the attack and evaluation code, and of the network code the attacks read
    the logits through (the custom functions of friendly/functions/ included): cached results
    made by other code are never reused."""
    digest = hashlib.sha256()
    functions = os.path.dirname(cuda_sigmoid.__file__)
    for module in (attacks.__file__, __file__, networks.__file__, renorm.__file__,
                   surrogates.__file__) + tuple(
            os.path.join(functions, name) for name in sorted(os.listdir(functions))
            if name.endswith(('.py', '.cu', '.h'))):
        with open(module, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def percent(correct):
    """Percent of True in `correct`, to 2 decimals (100 n / N rounded once)."""
    return round(100.0 * int(np.count_nonzero(correct)) / len(correct), 2) if len(correct) \
        else None


def depends_on_mode(net):
    return getattr(net, 'batch_renorms', None) is not None


class Cache:
    """Per-image results on disk, one .npy per key (a JSON-able dict): reruns and the
    --results rerun reuse what was computed; nothing is unpickled. It counts what it read back
    (hits) and what it did not hold (misses), which the record says, so that a table rebuilt
    from the cache does not pass for a fast computation."""

    def __init__(self, folder):
        self.folder = folder
        self.hits = self.misses = 0

    def path(self, key):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return os.path.join(self.folder, digest + '.npy') if self.folder else None

    def get(self, key):
        value = self._read(self.path(key))
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    @staticmethod
    def _read(path):
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


UNKNOWN = -1   # in the cache: an image the attack was not run on (robust-only schedule)


class Evaluator:
    """Runs `columns` (default COLUMNS; attack_columns) on victims against one source, and
    remembers the results: every accuracy under attack of friendly/ is measured here.

    `budgets`: some of defaults.EVALUATION's names (steps, restarts, targets, target_restarts,
    queries; the others keep their defaults; an unknown name is a TypeError); `chunk`: images
    handed to an attack at once (a multiple of the evaluation batch, 200: in 'batch' mode each
    200 keep their own statistics); the thesis's FGSM always runs on the batches of 200, as
    Table 3.2 did. `begin` (0 <= begin < 1): where in the images the source's examples are
    made first, going round from there; evaluators that run at once on one cache begin at
    different places, and each reads what the others made (robustness_eval.py --jobs).
    """

    def __init__(self, source, device, budgets, seed=0, cache=None, chunk=1000,
                 source_id='source', log=print, columns=COLUMNS, begin=0.0):
        if chunk % EVAL_BATCH:
            raise ValueError('chunk must be a multiple of %d' % EVAL_BATCH)
        unknown = sorted(set(budgets) - set(EVALUATION))
        if unknown:
            raise TypeError('unknown budget %s; the budgets are %s' % (
                ', '.join(map(repr, unknown)), ', '.join(EVALUATION)))
        self.source = source
        self.device = device
        self.budgets = dict(EVALUATION, **budgets)
        self.seed = seed
        self.cache = cache or Cache(None)
        self.chunk = chunk
        self.source_id = source_id
        self.log = log
        self.columns = columns
        # examples made on the source are the same for every victim: made once, kept here and
        # on disk beside the per-image results, where evaluators in other processes read them
        self._made_on_source = {}
        self.source_examples = Cache(self.cache.folder and os.path.join(self.cache.folder,
                                                                        'source'))
        self.begin = begin
        self._surrogates = {}
        self.code = code_version()
        self.seconds = collections.Counter()   # per column: time spent attacking and scoring
        self.computed = 0   # per-image results in which an image was attacked (not all read)

    def budget(self, key, scale=1):
        """The column's budget as the attack's keywords, every one times `scale` (the
        convergence check doubles them; targets at most every class but the label)."""
        out = {}
        for name in self.columns[key].budget:
            value = self.budgets[name] * scale
            if name == 'targets':
                value = min(value, CLASSES - 1)
            out[BUDGET_KEYWORD.get(name, name)] = value
        return out

    def surrogate(self, net, kind):
        """The surrogates of `net` of `kind` (surrogates.make; made once per network)."""
        if kind is None:
            return None
        found = self._surrogates.get((id(net), kind))
        if found is None:
            made = surrogates.make(net, kind)
            found = self._surrogates[(id(net), kind)] = (net, made)   # net kept: ids stay
        return found[1]

    def correct(self, key, victim, victim_id, x, t, epsilon, bn_mode, scale=1, only=None):
        """Per image: the victim's prediction on the column's adversarial example is right.

        `only` (robust-only schedule; whole batches of 200 in 'batch' mode): attack these
        images only; the others come back True (not broken by this column), to be read
        through the running worst case. Per-image results are cached and completed, never
        recomputed."""
        column = self.columns[key]
        maker = victim if column.on == 'victim' else self.source
        budget = self.budget(key, scale)
        modal = depends_on_mode(victim) or depends_on_mode(maker)
        cache_key = {'column': key, 'attack': column.attack, 'victim': victim_id,
                     'source': self.source_id if column.on == 'source' else None,
                     'epsilon': int(epsilon), 'bn_mode': bn_mode if modal else 'any',
                     'budget': budget, 'options': column.options,
                     'surrogate': column.surrogate, 'seed': self.seed, 'images': len(x),
                     'temperatures': TEMPERATURES if column.surrogate == 'tempered' else None,
                     'chunk': self.chunk, 'code': self.code}
        partial = column.on == 'victim' and attacks.takes(column.attack, 'only')
        wanted = np.ones(len(x), bool) if only is None or not partial \
            else np.asarray(only, bool)
        status = self.cache.get(cache_key)
        if status is None or len(status) != len(x):
            status = np.full(len(x), UNKNOWN, np.int8)
        status = status.astype(np.int8)
        todo = wanted & (status == UNKNOWN)
        if todo.any():
            begun = time.time()
            size = EVAL_BATCH if column.attack == 'fgsm' else self.chunk
            starts = list(range(0, len(x), size))
            if column.on == 'source':
                turn = int(self.begin * len(starts))
                starts = starts[turn:] + starts[:turn]
            for start in starts:
                part = todo[start:start + size]
                if not part.any():
                    continue
                xb = self.device.send(x[start:start + size])
                tb = self.device.send(t[start:start + size])
                adv = self._examples(key, column, maker, xb, tb, epsilon, bn_mode, budget,
                                     start, only=None if part.all() or not partial else part)
                right = score(victim, adv, tb, bn_mode)
                status[start:start + len(xb)][part] = right[part]
            self.cache.put(cache_key, status)
            self.seconds[key] += time.time() - begun
            self.computed += 1
        return np.where(wanted, status != 0, True)

    def accuracy(self, victim, victim_id, x, t, epsilon, bn_mode, keys):
        """Accuracy (%) clean and after each column of `keys`, every column on every image:
        each its own accuracy, as Table 3.2 reports them."""
        right = {'clean': score(victim, self.device.send(x), self.device.send(t), bn_mode)}
        for key in keys:
            right[key] = self.correct(key, victim, victim_id, x, t, epsilon, bn_mode)
        return {key: percent(values) for key, values in right.items()}

    def _examples(self, key, column, maker, xb, tb, epsilon, bn_mode, budget, start,
                  only=None):
        """The column's adversarial examples of the images xb (the test images from `start`
        on). Those made on the source (always of every image: `only` is for the victim's)
        are made once per run: kept in memory and in the cache, whoever made them."""
        on_source = column.on == 'source'
        if on_source:
            made_key = {'column': key, 'attack': column.attack, 'source': self.source_id,
                        'epsilon': int(epsilon),
                        'bn_mode': bn_mode if depends_on_mode(maker) else 'any',
                        'budget': budget, 'options': column.options,
                        'surrogate': column.surrogate, 'seed': self.seed, 'start': start,
                        'images': len(xb), 'code': self.code}
            memo = json.dumps(made_key, sort_keys=True)
            if memo not in self._made_on_source:
                found = self.source_examples.get(made_key)
                if found is not None and found.shape == xb.shape:
                    self._made_on_source[memo] = self.device.send(found)
            if memo in self._made_on_source:
                return self._made_on_source[memo]
        options = dict(budget, **column.options)
        options['rng'] = attacks.attack_rng(self.seed, key, start, epsilon)
        if attacks.takes(column.attack, 'group'):
            options['group'] = EVAL_BATCH
        if column.surrogate:
            options['surrogate'] = self.surrogate(maker, column.surrogate)
        if only is not None:
            options['only'] = self.device.send(only)
        adv = attacks.ATTACKS[column.attack](maker, xb, tb, int(epsilon), bn_mode, **options)
        if on_source:
            self._made_on_source[memo] = adv
            self.source_examples.put(made_key, chainer.backend.CpuDevice().send(adv))
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


def zero_gradient_percent(net, x, t, bn_mode, device, losses=('squared_distance', 'margin')):
    """Percent of input-gradient entries that are exactly 0 on clean batches of 200, for each
    of `losses`: the thesis's squared distance (FGSM's gradient) and the margin of the
    logits."""
    gradients = {'squared_distance': lambda xb, tb: attacks.loss_gradient(net, xb, tb, bn_mode),
                 'margin': lambda xb, tb: attacks.logit_loss_gradient(net, xb, tb, bn_mode,
                                                                      'margin')[1]}
    zeros = dict.fromkeys(losses, 0)
    for start in range(0, len(x), EVAL_BATCH):
        xb = device.send(x[start:start + EVAL_BATCH])
        tb = device.send(t[start:start + EVAL_BATCH])
        for loss in losses:
            zeros[loss] += int((gradients[loss](xb, tb) == 0).sum())
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


def in_order(columns):
    """The columns in the order they run (COLUMNS')."""
    unknown = [k for k in columns if k not in COLUMNS]
    if unknown:
        raise ValueError('unknown column %s' % ', '.join(unknown))
    return [k for k in COLUMNS if k in columns]


def schedule_of(victim, bn_mode):
    """ROBUST_ONLY where the victim's images are independent, else ROBUST_BATCHES (module
    doc)."""
    return ROBUST_ONLY if attacks.independent(victim, bn_mode) else ROBUST_BATCHES


def tabulate(correct, columns):
    """(accuracy per column and worst case, worst per image, images each column broke that
    the columns before it had not). A thesis column reports its own accuracy; the others the
    robust accuracy after them and every column before (their unattacked images read True)."""
    worst = correct['clean'].copy()
    accuracy, broke = {'clean': percent(worst)}, {}
    for key in in_order(columns):
        broke[key] = int((worst & ~correct[key]).sum())
        worst = worst & correct[key]
        accuracy[key] = percent(correct[key] if key in THESIS_COLUMNS else worst)
    accuracy[WORST] = percent(worst)
    return accuracy, worst, broke


def run_columns(evaluator, victim, victim_id, x, t, epsilon, bn_mode, columns, clean,
                scale=1):
    """Per column, per image: correct after the column's attack, run in COLUMNS' order; each
    column after the thesis's attacks only on the images (in 'batch' mode: the batches of 200)
    that every earlier column left robust. `scale`: budgets times this (the convergence
    check)."""
    schedule = schedule_of(victim, bn_mode)
    size = 1 if schedule == ROBUST_ONLY else EVAL_BATCH
    correct, worst = {'clean': clean}, clean.copy()
    for key in in_order(columns):
        only = attacks.whole_units(worst, size) if key not in THESIS_COLUMNS else None
        correct[key] = evaluator.correct(key, victim, victim_id, x, t, epsilon, bn_mode,
                                         scale=scale, only=only)
        worst = worst & correct[key]
    return correct, schedule


def applicable(columns, victim):
    """(the columns of `columns` that run on `victim`, {column: why not} for the others): a
    surrogate column runs only where its surrogate computes something new (surrogates.changes;
    not the CUDA-sigmoid and tempered ones of a network without sigmoids)."""
    run, left_out = [], {}
    for key in in_order(columns):
        kind = COLUMNS[key].surrogate
        if kind is None or surrogates.changes(victim, kind):
            run.append(key)
        else:
            left_out[key] = ('no sigmoid: its %s surrogate would be %s' % (
                kind, 'the network itself' if kind == 'cuda' else 'its float64 copy'))
    return run, left_out


def evaluate_network(evaluator, victim, victim_id, x, t, bn_mode, epsilon, columns,
                     curve_epsilons, subset, convergence=True):
    """Everything the table reports for one network in one test mode (see the module doc);
    the convergence check only with `convergence` (it costs more than the rest together)."""
    log = evaluator.log
    columns, left_out = applicable(columns, victim)
    for key, why in left_out.items():
        log('    %-15s not run: %s' % (key, why))
    n_sub = min(subset, len(x))
    seconds, begun = {}, time.time()
    spent_before = dict(evaluator.seconds)
    clean = score(victim, evaluator.device.send(x), evaluator.device.send(t), bn_mode)
    correct, schedule = run_columns(evaluator, victim, victim_id, x, t, epsilon, bn_mode,
                                    columns, clean)
    accuracy, worst, broke = tabulate(correct, columns)
    for key in columns:
        log('    %-15s eps %3d: %6.2f %%%s' % (key, epsilon, accuracy[key], (
            ' (cumulative; broke %d)' % broke[key]) if key not in THESIS_COLUMNS else ''))
    log('    %-15s eps %3d: %6.2f %%' % (WORST, epsilon, accuracy[WORST]))
    seconds['main'], begun = time.time() - begun, time.time()

    # accuracy against epsilon on the first n_sub images (at `epsilon`: the main run's)
    xs, ts = x[:n_sub], t[:n_sub]
    curve = {key: [] for key in ('clean',) + tuple(columns) + (WORST,)}
    rows = {}
    for eps in sorted(set(curve_epsilons) | {epsilon}):
        if eps == epsilon:
            here = {k: v[:n_sub] for k, v in correct.items()}
        else:
            here, _ = run_columns(evaluator, victim, victim_id, xs, ts, eps, bn_mode, columns,
                                  clean[:n_sub])
        rows[eps], _, _ = tabulate(here, columns)
        log('    curve eps %3d: worst %6.2f %%, FGSM %6.2f %%' % (
            eps, rows[eps][WORST], rows[eps].get('white_box_fgsm', float('nan'))))
    for key in curve:
        curve[key] = [rows[eps][key] for eps in curve_epsilons]
    seconds['curve'], begun = time.time() - begun, time.time()

    if convergence:
        convergence = check_convergence(evaluator, victim, victim_id, xs, ts, bn_mode, epsilon,
                                        columns, clean[:n_sub], rows)
        seconds['convergence'], begun = time.time() - begun, time.time()
    else:
        convergence = None
    zero = zero_gradient_percent(victim, x, t, bn_mode, evaluator.device)
    seconds['zero_gradient'] = time.time() - begun
    result = {
        'accuracy': accuracy,
        # columns past the thesis's report cumulative accuracy (module doc)
        'schedule': schedule,
        'broken_by': broke,
        'not_applicable': left_out,
        'curve': {'epsilons': list(curve_epsilons), 'images': n_sub, 'accuracy': curve},
        'convergence': convergence,
        'zero_gradient_percent': zero,
        # where the time went (cached results cost nothing): main table, curve, [convergence,]
        # zero gradient
        'seconds_by_phase': {k: round(v, 2) for k, v in seconds.items()},
        # per attack, over main table, curve [and convergence] (cached results cost nothing)
        'seconds_by_column': {k: round(evaluator.seconds[k] - spent_before.get(k, 0), 2)
                              for k in columns},
    }
    result['checks'] = checks(result, columns, epsilon)
    log('    seconds per attack: ' + ', '.join('%s %.1f' % kv
                                               for kv in result['seconds_by_column'].items()))
    return result


def check_convergence(evaluator, victim, victim_id, xs, ts, bn_mode, epsilon, columns, clean,
                      rows):
    """The convergence check on the subset `xs`: every column again with every budget doubled
    (steps, restarts, targets, queries) at every epsilon of `rows` (the curve's tabulated
    rows); where the worst case is already 0 (or eps is 0) it cannot move."""
    log, n_sub = evaluator.log, len(xs)
    by_epsilon, doubled_at_main = [], None
    for eps in sorted(rows):
        base = rows[eps][WORST]
        if eps == 0 or not base:
            by_epsilon.append({'epsilon': eps, 'worst_case': base, 'worst_case_doubled': base,
                               'change_points': 0.0, 'run': False})
        else:
            here, _ = run_columns(evaluator, victim, victim_id, xs, ts, eps, bn_mode, columns,
                                  clean, scale=2)
            doubled_row, _, _ = tabulate(here, columns)
            by_epsilon.append({'epsilon': eps, 'worst_case': base,
                               'worst_case_doubled': doubled_row[WORST],
                               'change_points': round(doubled_row[WORST] - base, 2),
                               'run': True})
            if eps == epsilon:
                doubled_at_main = doubled_row
        log('    convergence eps %3d on %d images: worst %.2f -> %.2f with doubled budgets%s'
            % (eps, n_sub, base, by_epsilon[-1]['worst_case_doubled'],
               '' if by_epsilon[-1]['run'] else ' (nothing left to break: not run)'))
    main = next(e for e in by_epsilon if e['epsilon'] == epsilon)
    largest = max(by_epsilon, key=lambda e: abs(e['change_points']))
    return {
        'images': n_sub, 'worst_case': main['worst_case'],
        'worst_case_doubled': main['worst_case_doubled'],
        'change_points_at_epsilon': main['change_points'],
        # the largest move over the epsilons (signed): what the check reads
        'change_points': largest['change_points'],
        'converged': all(abs(e['change_points']) <= CHECKS['convergence_points']
                         for e in by_epsilon),
        'by_epsilon': by_epsilon,
        'doubled_accuracy': {k: doubled_at_main[k] for k in columns if COLUMNS[k].budget}
        if doubled_at_main else None,
        'budgets_doubled': {k: evaluator.budget(k, 2) for k in columns if COLUMNS[k].budget},
    }


def converged_check(conv):
    """The convergence verdict of check_convergence's result (None: not checked)."""
    if conv is None:
        return {'ok': None, 'detail': 'not checked (robustness_eval.py --convergence checks it)'}
    moves = ', '.join('eps %d: %+.2f' % (e['epsilon'], e['change_points'])
                      for e in conv.get('by_epsilon') or () if e['run'])
    return {'ok': conv['converged'],
            'detail': 'doubled budgets move the worst case by %.2f points at most, on %d images%s%s'
                      % (abs(conv['change_points']), conv['images'],
                         ' (%s)' % moves if moves else '',
                         '' if conv['converged'] else ': did NOT converge')}


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

    out['converged'] = converged_check(result['convergence'])

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
