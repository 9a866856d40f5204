"""Adversarial attacks on integer MNIST pixels: the thesis's FGSM (Table 3.2) and, beyond it,
the attacks a reliable evaluation needs (Carlini et al. 2019; Croce & Hein 2020).

Every attack returns float32 images whose pixels are integers in [0, 255] within L-inf
distance `epsilon` (an integer, in pixel units; the thesis's 77 = 0.3 * 255) of the input:
rounding to integers and clipping to the ball and the pixel range is the projection.

    fgsm      the thesis's attack (Goodfellow et al. 2015): one step
              x + eps * sign(dL/dx) of the squared-distance training loss, clipped.
    pgd       PGD as the original code parameterised it (Madry et al. 2018): 100 steps of
              round(2.5 eps / 100) pixels on the same loss, 20 integer random starts.
    apgd      APGD (Croce & Hein 2020) on the margin max_{i != y} z_i - z_y of the
              pre-activation outputs z: step 2 eps, halved at checkpoints, momentum 0.75;
              `restarts` random starts.
    apgd_ce   the same on the softmax cross-entropy of z.
    apgd_t    targeted APGD (APGD-T, Croce & Hein 2020, section 4): one APGD run per target
              class t, the `targets` classes with the highest clean logits other than the
              label, on the targeted DLR loss -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
              (pi: the classes sorted by z, descending) or the targeted margin z_t - z_y.
    square    Square Attack (Andriushchenko et al. 2020): gradient-free random search over
              +-eps vertices, on the margin of z.

An attack is made on one network; examples made on the black-box source and shown to the victim
(black-box FGSM, transfer) are columns of friendly/robustness.py, which scores every attack.

Budgets (steps, restarts, targets, queries) default to friendly/defaults.py; every attack
takes its options by name and rejects any other (a misspelt budget is a TypeError).

Logits z: the pre-activation outputs of the network's last layer, from the network's own
`logits(x, bn_mode, group)` (friendly/networks.py: FCNet.logits), which also returns the outputs
y; arg-max z is the prediction, while z itself does not saturate. `group` (the evaluation
batch, 200) lets several batches go through at once in 'batch' mode, each on its own statistics.

Surrogate gradients (beyond the thesis): pgd, apgd, apgd_ce and apgd_t take a `surrogate`, the
same network computed differently (friendly/surrogates.py: the thesis GPU's sigmoid, float64,
tempered sigmoids); apgd, apgd_ce and apgd_t also take a tuple of them, and make every run once
per surrogate. Its input gradient steers the attack where the real network's float32 sigmoids
are saturated and their gradient is exactly zero or useless (section 3.3's gradient masking);
every success test (is the image misclassified?) reads the real network, and so does every
score made of the returned images. FGSM stays the thesis's.

Batch Renormalization test modes (friendly/networks.py): in 'batch' mode an image's output
depends on its whole batch of 200, so a batch is attacked together (as the thesis's FGSM is)
and every success test reads the batch's own outputs; in 'running' mode (and for networks
without Batch Renormalization) images are independent. An attack may be told to attack `only`
some images (robustness.py's robust-only schedule): any images where they are independent,
whole groups of 200 in 'batch' mode (unit); its random numbers are drawn for the whole batch
either way, so an image's result does not depend on which others are attacked.
"""
import inspect
import zlib

import chainer
import chainer.functions as F
import numpy as np

from friendly.defaults import APGD, APGD_T, PGD, SQUARE
from friendly.objective import one_hot, squared_distance


def predict(net, x, bn_mode):
    """Network outputs for a batch, without recording gradients."""
    with chainer.no_backprop_mode(), chainer.using_config('train', False):
        return net(x, bn_mode).array


def loss_gradient(net, x, t, bn_mode):
    """dL/dx of the squared-distance loss for the batch x (array), in the given BN mode."""
    x = chainer.Variable(x)
    with chainer.using_config('train', False):
        loss = squared_distance(net(x, bn_mode), t)
    gx, = chainer.grad([loss], [x])
    return gx.array


def per_example_loss(net, x, t, bn_mode):
    y = predict(net, x, bn_mode)
    return ((y - one_hot(t, y.shape[1], y.dtype)) ** 2).sum(axis=1)


def independent(net, bn_mode):
    """Whether each image's output depends on that image only (no batch statistics)."""
    return bn_mode != 'batch' or getattr(net, 'batch_renorms', None) is None


def unit(net, bn_mode, group, n):
    """How many consecutive images of a batch of n an attack must treat as one: 1 where images
    are independent, else a `group` (all n without one) sharing its batch statistics."""
    return 1 if independent(net, bn_mode) else min(group or n, n)


def whole_units(mask, size):
    """Per image: whether any image of its unit (the `size` consecutive images it is among;
    the last unit may be shorter) is marked in `mask`."""
    if size == 1:
        return mask
    xp = chainer.backend.get_array_module(mask)
    ids = xp.arange(len(mask)) // size
    hit = xp.zeros(int(ids[-1]) + 1 if len(mask) else 0, bool)
    hit[ids[mask]] = True
    return hit[ids]


# ---------------------------------------------------------------------------------------------
# Losses of the logits

def _other_best(z, t):
    """Largest z_i over i != t (per row), as a Variable."""
    xp = chainer.backend.get_array_module(z)
    mask = one_hot(t, z.shape[1], bool)
    return F.max(F.where(mask, xp.full(z.shape, -np.inf, z.dtype), z), axis=1)


def margin_loss(z, t, target=None):
    """max_{i != y} z_i - z_y: positive exactly when the logits misclassify."""
    return _other_best(z, t) - F.select_item(z, t)


def cross_entropy_loss(z, t, target=None):
    return F.softmax_cross_entropy(z, t, reduce='no')


def _sorted_logits(z):
    """z per row in descending order (an array: the order is not differentiated)."""
    xp = chainer.backend.get_array_module(z)
    order = xp.argsort(-z.array, axis=1)
    return [F.select_item(z, order[:, k]) for k in range(min(z.shape[1], 4))]


def dlr_loss(z, t, target=None):
    """Croce & Hein's difference of logits ratio: the margin over (z_pi1 - z_pi3)."""
    top = _sorted_logits(z)
    return margin_loss(z, t) / (top[0] - top[2] + 1e-12)


def margin_targeted_loss(z, t, target):
    """z_target - z_y: rises as the target's logit overtakes the label's (the targeted margin;
    the image is adversarial as soon as any class beats the label)."""
    return F.select_item(z, target) - F.select_item(z, t)


def dlr_targeted_loss(z, t, target):
    """Croce & Hein 2020's targeted DLR loss, -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2),
    pi sorting the classes by z, descending: invariant to shifting and scaling z."""
    top = _sorted_logits(z)
    spread = top[0] - (top[2] + top[3]) * 0.5
    return margin_targeted_loss(z, t, target) / (spread + 1e-12)


# Per-example losses of the logits; higher is more adversarial. The targeted ones need a target
# class per example (apgd_t), the others ignore it.
LOSSES = {'margin': margin_loss, 'ce': cross_entropy_loss, 'dlr': dlr_loss,
          'margin_targeted': margin_targeted_loss, 'dlr_targeted': dlr_targeted_loss}
TARGETED = ('margin_targeted', 'dlr_targeted')


def _dtype(net):
    """The floating-point type of a network's parameters (float64 for a float64 surrogate)."""
    for param in net.params():
        return param.dtype
    return np.dtype(np.float32)


def _in_arithmetic(net, x):
    """x in the network's own floating-point type."""
    dtype = _dtype(net)
    return x if x.dtype == dtype else x.astype(dtype)


def _signs_as(gradient, dtype):
    """A surrogate's input gradient in the images' type: its signs, which is all the L-inf
    attacks use of it (float64 entries below float32's range would round to 0)."""
    if gradient.dtype == dtype:
        return gradient
    xp = chainer.backend.get_array_module(gradient)
    return xp.sign(gradient).astype(dtype)


def _misclassified(net, x, t, bn_mode, group):
    """Whether the network's outputs misclassify each image (no gradient recorded)."""
    with chainer.no_backprop_mode():
        _, y = net.logits(x, bn_mode, group)
    return y.array.argmax(axis=1) != t


def logit_loss_gradient(net, x, t, bn_mode, loss="margin", group=None, target=None,
                        surrogate=None):
    """Per-example loss, its input gradient, and whether the outputs misclassify, at x.

    With a `surrogate`, the loss and its gradient are the surrogate's (the gradient as signs in
    x's type) and the misclassification test is the real network's."""
    if (loss in TARGETED) != (target is not None):
        raise ValueError('loss %r %s a target' % (loss, 'needs' if loss in TARGETED
                                                   else 'takes no'))
    maker = net if surrogate is None else surrogate
    xv = chainer.Variable(_in_arithmetic(maker, x))
    z, y = maker.logits(xv, bn_mode, group)
    values = LOSSES[loss](z, t, target)
    gx, = chainer.grad([F.sum(values)], [xv])
    if surrogate is None:
        return values.array, gx.array, y.array.argmax(axis=1) != t
    return (values.array, _signs_as(gx.array, x.dtype),
            _misclassified(net, x, t, bn_mode, group))


def _margin_and_fooled(net, x, t, bn_mode, group):
    """z_y - max_{i != y} z_i (what Square lowers) and whether the outputs misclassify."""
    with chainer.no_backprop_mode():
        z, y = net.logits(x, bn_mode, group)
        return -margin_loss(z, t).array, y.array.argmax(axis=1) != t


# ---------------------------------------------------------------------------------------------
# Attacks

def _ball(x, epsilon):
    xp = chainer.backend.get_array_module(x)
    return xp.clip(x - epsilon, 0, 255), xp.clip(x + epsilon, 0, 255)


def _project(v, low, high):
    """Nearest integer image in the ball and the pixel range (both have integer bounds)."""
    xp = chainer.backend.get_array_module(v)
    return xp.clip(xp.round(v), low, high)


def _project_in_place(v, low, high):
    """_project, overwriting v (an array the caller owns): rint rounds halves to even as
    round does, and max-then-min is clip for low <= high, without a new array per step."""
    xp = chainer.backend.get_array_module(v)
    xp.rint(v, out=v)
    xp.maximum(v, low, out=v)
    return xp.minimum(v, high, out=v)


def _signed_step(point, eta_rows, grad, low, high):
    """point + eta sign(grad), projected: a new array."""
    xp = chainer.backend.get_array_module(point)
    out = xp.sign(grad)
    out *= eta_rows
    out += point
    return _project_in_place(out, low, high)


def _random_start(x, epsilon, rng, low, high):
    xp = chainer.backend.get_array_module(x)
    noise = rng.randint(-epsilon, epsilon + 1, size=x.shape).astype(x.dtype)
    return xp.clip(x + xp.asarray(noise), low, high)


def _rows(mask, shape):
    """A per-example boolean mask broadcast over the image axes."""
    return mask.reshape((-1,) + (1,) * (len(shape) - 1))


def _attacked(x, net, bn_mode, only, group):
    """The rows an attack works on: every row (a slice) or those `only` marks, which must be
    whole units (unit: in 'batch' mode, whole groups sharing their statistics)."""
    if only is None:
        return slice(None)
    xp = chainer.backend.get_array_module(x)
    only = xp.asarray(only, bool)
    if only.shape != (len(x),):
        raise ValueError('`only` must have one boolean per image')
    size = unit(net, bn_mode, group, len(x))
    if size > 1 and bool((whole_units(only, size) != only).any()):
        raise ValueError("`only` must mark whole groups of %d images: in 'batch' mode an "
                         "image's output depends on its group" % size)
    return xp.nonzero(only)[0]


def fgsm(net, x, t, epsilon, bn_mode='batch', rng=None):
    """One signed-gradient step of size epsilon, clipped to the pixel range (thesis 3.3).
    Deterministic: `rng` is accepted, like every attack's, and not used."""
    xp = chainer.backend.get_array_module(x)
    return xp.clip(x + epsilon * xp.sign(loss_gradient(net, x, t, bn_mode)), 0, 255)


def pgd(net, x, t, epsilon, bn_mode='batch', steps=PGD['steps'], restarts=PGD['restarts'],
        rng=None, surrogate=None):
    """L-inf PGD on integer pixels; the highest-loss iterate over restarts per example.

    With a `surrogate` the squared-distance gradient and loss are the surrogate's, and an
    iterate the real network misclassifies is preferred to any that it does not."""
    xp = chainer.backend.get_array_module(x)
    rng = rng or np.random.RandomState(0)
    step = max(1, int(round(2.5 * epsilon / steps)))
    low, high = _ball(x, epsilon)

    def gradient(adv):
        if surrogate is None:
            return loss_gradient(net, adv, t, bn_mode)
        return _signs_as(loss_gradient(surrogate, _in_arithmetic(surrogate, adv), t, bn_mode),
                         x.dtype)

    def key(adv):   # (misclassified by the real network, loss); without a surrogate the loss
        if surrogate is None:
            return xp.zeros(len(adv), bool), per_example_loss(net, adv, t, bn_mode)
        return (predict(net, adv, bn_mode).argmax(axis=1) != t,
                per_example_loss(surrogate, _in_arithmetic(surrogate, adv), t, bn_mode))

    best = x.copy()
    best_fooled, best_loss = key(x)
    for _ in range(restarts):
        adv = _random_start(x, epsilon, rng, low, high)
        for _ in range(steps):
            adv = xp.clip(adv + step * xp.sign(gradient(adv)), low, high)
        # keep, per example, whichever of the old best and this restart hurts more
        fooled, loss = key(adv)
        better = _better(fooled, loss, best_fooled, best_loss)
        best[better], best_loss[better] = adv[better], loss[better]
        best_fooled = best_fooled | fooled
    return best


def apgd_checkpoints(steps):
    """Iterations at which APGD may halve its step: p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), times the number of steps (rounded up).
    Computed in whole percent, so that no rounding error moves a checkpoint."""
    points, previous, current = [], 0, 22
    while current < 100:
        points.append(-(-current * steps // 100))
        previous, current = current, current + max(current - previous - 3, 6)
    return sorted(set(p for p in points if 0 < p < steps))


def _better(fooled, loss, best_fooled, best_loss):
    """Per example: (fooled, loss) beats (best_fooled, best_loss) lexicographically."""
    return (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))


def _apgd_run(net, x, t, start, epsilon, bn_mode, steps, loss, group, momentum, rho,
              target=None, surrogate=None):
    """One APGD run from `start`; returns (best iterate, its fooled flag, its loss).
    `target`: the target class per example of a targeted loss; `surrogate`: see the module
    doc (gradient and loss from it, the fooled flag from `net`)."""
    xp = chainer.backend.get_array_module(x)
    low, high = _ball(x, epsilon)
    n = len(x)
    checkpoints = set(apgd_checkpoints(steps))
    eta = xp.full(n, 2.0 * epsilon, x.dtype)
    shape = x.shape

    def evaluate_at(adv):
        return logit_loss_gradient(net, adv, t, bn_mode, loss, group, target, surrogate)

    cur_loss, grad, fooled = evaluate_at(start)
    best, best_loss, best_fooled, best_grad = (start.copy(), cur_loss.copy(), fooled.copy(),
                                               grad.copy())
    # the loss's running maximum, for the step-size rule (independent of the fooled ranking)
    top_loss = cur_loss.copy()
    previous, current = start, _signed_step(start, _rows(eta, shape), grad, low, high)
    last_loss = cur_loss
    successes = xp.zeros(n, np.int32)
    last_checkpoint, eta_then, top_then = 0, eta.copy(), top_loss.copy()
    for k in range(1, steps):
        cur_loss, grad, fooled = evaluate_at(current)
        successes += cur_loss > last_loss
        last_loss = cur_loss
        top_loss = xp.maximum(top_loss, cur_loss)
        better = _better(fooled, cur_loss, best_fooled, best_loss)
        rows = _rows(better, shape)
        xp.copyto(best, current, where=rows)   # best and best_grad are this run's own arrays
        xp.copyto(best_grad, grad, where=rows)
        best_loss = xp.where(better, cur_loss, best_loss)
        best_fooled = best_fooled | fooled
        if k in checkpoints:
            # halve where too few steps raised the loss, or where neither the step nor the
            # best loss changed since the last checkpoint; those restart from the best point
            few = successes < rho * (k - last_checkpoint)
            stalled = (eta_then == eta) & (top_then == top_loss)
            halve = few | stalled
            eta = xp.where(halve, xp.maximum(eta / 2, 1.0), eta)
            rows = _rows(halve, shape)
            current = xp.where(rows, best, current)
            previous = xp.where(rows, best, previous)
            grad = xp.where(rows, best_grad, grad)
            last_loss = xp.where(halve, best_loss, last_loss)
            successes[:] = 0
            last_checkpoint, eta_then, top_then = k, eta.copy(), top_loss.copy()
        # current + momentum (step - current) + (1 - momentum) (current - previous), in the
        # same order of operations, on new arrays only
        moved = _signed_step(current, _rows(eta, shape), grad, low, high)
        moved -= current
        moved *= momentum
        moved += current
        drift = current - previous
        drift *= 1 - momentum
        moved += drift
        previous, current = current, _project_in_place(moved, low, high)
    cur_loss, _, fooled = evaluate_at(current)
    better = _better(fooled, cur_loss, best_fooled, best_loss)
    best = xp.where(_rows(better, shape), current, best)
    best_loss = xp.where(better, cur_loss, best_loss)
    return best, best_fooled | fooled, best_loss


def _apgd_runs(net, x, t, epsilon, bn_mode, runs, steps, loss, rng, group, momentum, rho,
               surrogate, only):
    """APGD from a fresh random integer start for each entry of `runs` (the target classes
    per example of one run, or None) and each surrogate (a network, a tuple of them, or None),
    on the rows `only` marks; per example the best iterate of all runs: a misclassifying one
    before any other, then the highest loss (each run's own). Where images are independent, a
    run after the first works only on the images no earlier run fooled, as AutoAttack's
    restarts do (a fooled image keeps its first fooling iterate). Every start is drawn for the
    whole batch, so an image's result does not depend on `only`."""
    xp = chainer.backend.get_array_module(x)
    rows = _attacked(x, net, bn_mode, only, group)
    if epsilon == 0 or steps < 1 or not runs:
        return x.copy()
    rng = rng or np.random.RandomState(0)
    low, high = _ball(x, epsilon)
    xs, ts = x[rows], t[rows]
    shrink = independent(net, bn_mode)
    best = best_fooled = best_loss = None
    steering = surrogate if isinstance(surrogate, tuple) else (surrogate,)
    for steer, target in ((s, target) for s in steering for target in runs):
        start = _random_start(x, epsilon, rng, low, high)[rows]
        target = None if target is None else target[rows]
        if best is None:
            best, best_fooled, best_loss = _apgd_run(net, xs, ts, start, epsilon, bn_mode, steps,
                                                     loss, group, momentum, rho, target, steer)
            continue
        left = xp.nonzero(~best_fooled)[0] if shrink else slice(None)
        if shrink and len(left) == 0:
            continue                                  # the other starts are still drawn
        adv, fooled, value = _apgd_run(net, xs[left], ts[left], start[left], epsilon, bn_mode,
                                       steps, loss, group, momentum, rho,
                                       None if target is None else target[left], steer)
        better = _better(fooled, value, best_fooled[left], best_loss[left])
        best[left] = xp.where(_rows(better, adv.shape), adv, best[left])
        best_loss[left] = xp.where(better, value, best_loss[left])
        best_fooled[left] = best_fooled[left] | fooled
    if isinstance(rows, slice):
        return best
    out = x.copy()
    out[rows] = best
    return out


def apgd(net, x, t, epsilon, bn_mode='batch', steps=APGD['steps'], restarts=APGD['restarts'],
         loss='margin', rng=None, group=None, momentum=APGD['momentum'], rho=APGD['rho'],
         surrogate=None, only=None):
    """APGD from `restarts` random integer starts; per example the best iterate of all
    restarts. Best: a misclassifying iterate before any other, then the highest loss.

    `loss`: 'margin', 'ce' or 'dlr' (targeted losses: apgd_t); `surrogate`: a network (or a
    tuple of them) whose gradients steer the attack (module doc); `only`: attack these images
    only (whole groups in 'batch' mode: unit), return the others unchanged."""
    if loss in TARGETED:
        raise ValueError('loss %r is targeted: use apgd_t' % loss)
    return _apgd_runs(net, x, t, epsilon, bn_mode, [None] * restarts, steps, loss, rng, group,
                      momentum, rho, surrogate, only)


def apgd_ce(net, x, t, epsilon, bn_mode='batch', steps=APGD['steps'],
            restarts=APGD['restarts'], rng=None, group=None, momentum=APGD['momentum'],
            rho=APGD['rho'], surrogate=None, only=None):
    """APGD on the cross-entropy of the pre-activation outputs."""
    return apgd(net, x, t, epsilon, bn_mode, steps=steps, restarts=restarts, loss='ce',
                rng=rng, group=group, momentum=momentum, rho=rho, surrogate=surrogate,
                only=only)


def target_classes(net, x, t, bn_mode, targets, group=None):
    """The target classes of apgd_t, (k, n): row j holds, per image, the class with the j-th
    highest clean logit among those other than the label (Croce & Hein 2020, section 4), for
    j < min(targets, classes - 1). Read from the real network at the clean images."""
    xp = chainer.backend.get_array_module(x)
    with chainer.no_backprop_mode():
        z, _ = net.logits(x, bn_mode, group)
    z = z.array.copy()
    z[xp.arange(len(x)), t] = -np.inf
    order = xp.argsort(-z, axis=1, kind='stable').astype(t.dtype)
    return order[:, :min(int(targets), z.shape[1] - 1)].T


def apgd_t(net, x, t, epsilon, bn_mode='batch', steps=APGD_T['steps'],
           restarts=APGD_T['restarts'], targets=APGD_T['targets'], loss='dlr_targeted',
           rng=None, group=None, momentum=APGD['momentum'], rho=APGD['rho'], surrogate=None,
           only=None):
    """Targeted APGD (APGD-T, Croce & Hein 2020): for each of the `targets` classes with the
    highest clean logits other than the label (target_classes), `restarts` APGD runs that
    raise a targeted loss ('dlr_targeted', their targeted DLR, or 'margin_targeted',
    z_t - z_y); per example the best iterate of all runs, a misclassifying one (into any
    class) first, then the highest loss. The runs are those of apgd (_apgd_run)."""
    if loss not in TARGETED:
        raise ValueError('apgd_t needs a targeted loss (%s), not %r' % (', '.join(TARGETED),
                                                                         loss))
    if epsilon == 0 or steps < 1:
        _attacked(x, net, bn_mode, only, group)
        return x.copy()
    classes = target_classes(net, x, t, bn_mode, targets, group)
    runs = [target for target in classes for _ in range(restarts)]
    return _apgd_runs(net, x, t, epsilon, bn_mode, runs, steps, loss, rng, group, momentum,
                      rho, surrogate, only)


def square_fraction(i, queries, p_init=SQUARE['p_init']):
    """Fraction p of the image a window covers at query i: p_init halved at 10, 50, 200, 500,
    1k, 2k, 4k, 6k, 8k of a 10,000-query budget (rescaled to `queries`)."""
    i = int(i / queries * 10000)
    halvings = sum(i > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2 ** halvings


def _window_masks(rows, cols, size, height, width, xp):
    """(n, 1, height, width) booleans: a size x size window at (rows[k], cols[k]) per image."""
    r, c = xp.arange(height), xp.arange(width)
    in_rows = (r[None, :] >= rows[:, None]) & (r[None, :] < rows[:, None] + size)
    in_cols = (c[None, :] >= cols[:, None]) & (c[None, :] < cols[:, None] + size)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def square(net, x, t, epsilon, bn_mode='batch', queries=SQUARE['queries'],
           p_init=SQUARE['p_init'], rng=None, group=None, only=None):
    """Square Attack (L-inf): random search over perturbations with entries +-epsilon.

    Start from vertical stripes of +-epsilon; each query sets a random s x s window of the
    perturbation to a fresh +-epsilon per channel and keeps it where the margin
    z_y - max_{i != y} z_i falls. Every image gets its own window each query (one batched
    forward pass); an image stops once misclassified (in 'batch' mode, a group once all its
    images are). The first stripes count as one query.
    Each query's windows and values are drawn for the whole batch, so that, where images are
    independent, an image's result does not depend on the others; `only`: attack these
    images only (whole groups in 'batch' mode: unit), return the others unchanged.
    """
    xp = chainer.backend.get_array_module(x)
    rows_attacked = _attacked(x, net, bn_mode, only, group)
    if epsilon == 0 or queries < 1:
        return x.copy()
    rng = rng or np.random.RandomState(0)
    n, channels, height, width = x.shape
    size = unit(net, bn_mode, group, n)
    together = size > 1
    chosen = xp.zeros(n, bool)
    chosen[rows_attacked] = True
    stripes = rng.choice([-epsilon, epsilon], size=(n, channels, 1, width)).astype(x.dtype)
    delta = xp.broadcast_to(xp.asarray(stripes), x.shape).copy()
    delta[~chosen] = 0
    margin, fooled = _margin_and_fooled(net, xp.clip(x + delta, 0, 255), t, bn_mode, group)
    for i in range(1, queries):
        active = ~fooled & chosen
        if not bool(active.any()):
            break
        side = int(round(np.sqrt(square_fraction(i, queries, p_init) * height * width)))
        side = min(max(side, 1), height - 1)
        # together: every image of a group with an active image (the others cannot change)
        pick = xp.nonzero(whole_units(active, size))[0]
        m = len(pick)
        rows = xp.asarray(rng.randint(0, height - side + 1, size=n))[pick]
        cols = xp.asarray(rng.randint(0, width - side + 1, size=n))[pick]
        values = xp.asarray(rng.choice([-epsilon, epsilon], size=(n, channels, 1, 1))
                            .astype(x.dtype))[pick]
        window = _window_masks(rows, cols, side, height, width, xp)
        old = delta[pick]
        # a window already at the drawn value everywhere would waste the query: flip it
        same = ((old == values) | ~window).reshape(m, channels, -1).all(axis=2)
        values = xp.where(same[:, :, None, None], -values, values)
        trial = xp.where(window, values, old)
        if together:
            trial = xp.where(_rows(active[pick], trial.shape), trial, old)
        m_trial, f_trial = _margin_and_fooled(net, xp.clip(x[pick] + trial, 0, 255), t[pick],
                                              bn_mode, group)
        keep = (m_trial < margin[pick]) | f_trial
        if together:
            keep &= active[pick]
        delta[pick] = xp.where(_rows(keep, trial.shape), trial, old)
        if together:
            # the groups' statistics moved with every kept window: read their images again
            margin[pick], fooled[pick] = _margin_and_fooled(
                net, xp.clip(x[pick] + delta[pick], 0, 255), t[pick], bn_mode, group)
        else:
            margin[pick] = xp.where(keep, m_trial, margin[pick])
            fooled[pick] = fooled[pick] | (keep & f_trial)
    return xp.clip(x + delta, 0, 255)


# name -> attack(net, x, t, epsilon, bn_mode, rng=..., **budget); 'fgsm' is the thesis's.
ATTACKS = {'fgsm': fgsm, 'pgd': pgd, 'apgd': apgd, 'apgd_ce': apgd_ce, 'apgd_t': apgd_t,
           'square': square}
# What each one needs from the network it is made on, for the gradient-masking checks.
KINDS = {'fgsm': 'single-step gradient', 'pgd': 'iterative gradient',
         'apgd': 'iterative gradient', 'apgd_ce': 'iterative gradient',
         'apgd_t': 'iterative gradient', 'square': 'gradient-free'}


def takes(name, option):
    """Whether the attack `name` takes the keyword `option` (e.g. 'group', 'only')."""
    return option in inspect.signature(ATTACKS[name]).parameters


def attack_rng(seed, name, start, epsilon):
    """The random stream of one attack on the batch starting at image `start`: the same
    images come out whatever else is run, and in whatever order."""
    return np.random.RandomState([seed, zlib.crc32(name.encode()), start, int(epsilon)])
