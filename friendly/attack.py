"""Attack a trained network on the 10,000 MNIST test images (thesis 3.3.1, Table 3.2).

    python friendly/attack.py runs/friendly/thesis/S --source runs/friendly/thesis/source
    python friendly/attack.py runs/friendly/thesis/RS --bn-mode running --attack fgsm pgd

Clean accuracy, FGSM white-box (gradients of the victim itself) and, with --source, FGSM
black-box (gradients of the source network, the same images shown to the victim). Pixels stay
integers in [0, 255]; epsilon is in pixel units (thesis: 77 = 0.3 * 255).

    FGSM:  x_adv = clip(x + eps * sign(dL/dx), 0, 255)
    PGD (beyond the thesis, Madry et al.): random integer start in the eps-ball, then repeated
           x <- clip(x + step * sign(dL/dx)) projected onto the ball; the highest-loss iterate
           of all restarts is kept per example.
L is the training loss (squared distance to the one-hot label).
"""
import argparse
import json

import chainer
import numpy as np

from friendly import mnist
from runkit.cli import UserError, run_main
from friendly.defaults import PGD, PROTOCOL
from friendly.networks import BN_MODES
from friendly.objective import one_hot, squared_distance
from runkit.provenance import provenance, write_json


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


def fgsm(net, x, t, epsilon, bn_mode='batch', **_):
    """One signed-gradient step of size epsilon, clipped to the pixel range."""
    xp = chainer.backend.get_array_module(x)
    return xp.clip(x + epsilon * xp.sign(loss_gradient(net, x, t, bn_mode)), 0, 255)


def pgd(net, x, t, epsilon, bn_mode='batch', steps=PGD['steps'], restarts=PGD['restarts'],
        rng=None):
    """L-inf PGD on integer pixels; the highest-loss iterate over restarts per example."""
    xp = chainer.backend.get_array_module(x)
    rng = rng or np.random.RandomState(0)
    step = max(1, int(round(2.5 * epsilon / steps)))
    low, high = xp.clip(x - epsilon, 0, 255), xp.clip(x + epsilon, 0, 255)
    best, best_loss = x.copy(), per_example_loss(net, x, t, bn_mode)
    for _ in range(restarts):
        noise = rng.randint(-epsilon, epsilon + 1, size=x.shape).astype(x.dtype)
        adv = xp.clip(x + xp.asarray(noise), low, high)
        for _ in range(steps):
            adv = xp.clip(adv + step * xp.sign(loss_gradient(net, adv, t, bn_mode)), low, high)
        # keep, per example, whichever of the old best and this restart hurts more
        loss = per_example_loss(net, adv, t, bn_mode)
        better = loss > best_loss
        best[better], best_loss[better] = adv[better], loss[better]
    return best


ATTACKS = {'fgsm': fgsm, 'pgd': pgd}


def accuracy(net, x, t, bn_mode):
    return int((predict(net, x, bn_mode).argmax(axis=1) == t).sum())


def evaluate(victim, x, t, source=None, attacks=('fgsm',), epsilon=PROTOCOL['epsilon'],
             bn_mode=PROTOCOL['bn_test_mode'], batch_size=PROTOCOL['eval_batch_size'],
             device='@numpy', seed=0):
    """Accuracy in percent: clean, each attack white-box and (with a source) black-box."""
    device = chainer.get_device(device)
    rng = np.random.RandomState(seed)
    correct = {'clean': 0}
    for start in range(0, len(x), batch_size):
        xb = device.send(x[start:start + batch_size])
        tb = device.send(t[start:start + batch_size])
        correct['clean'] += accuracy(victim, xb, tb, bn_mode)
        for name in attacks:
            attack = ATTACKS[name]
            adv = attack(victim, xb, tb, epsilon, bn_mode, rng=rng)
            key = 'white_box_' + name
            correct[key] = correct.get(key, 0) + accuracy(victim, adv, tb, bn_mode)
            if source is not None:
                adv = attack(source, xb, tb, epsilon, bn_mode, rng=rng)
                key = 'black_box_' + name
                correct[key] = correct.get(key, 0) + accuracy(victim, adv, tb, bn_mode)
    return {key: round(100.0 * n / len(x), 2) for key, n in correct.items()}


def test_set(test_subset=None, mnist_dir=None):
    _, (x, t) = mnist.load_mnist(mnist_dir)
    return (x[:test_subset], t[:test_subset]) if test_subset else (x, t)


def main():
    from friendly.train import load_model
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('victim', help='run folder of the attacked network (friendly/train.py)')
    parser.add_argument('--source', help='run folder of the black-box source network')
    parser.add_argument('--attack', nargs='+', default=['fgsm'], choices=sorted(ATTACKS),
                        help='attacks to run (thesis: fgsm)')
    parser.add_argument('--epsilon', type=int, default=PROTOCOL['epsilon'],
                        help='L-inf radius in pixel units (thesis: 77)')
    parser.add_argument('--bn-mode', default=PROTOCOL['bn_test_mode'], choices=BN_MODES,
                        help="Batch Renormalization at test time: 'batch' statistics (thesis), "
                             "learned 'running' averages, or 'train' (Chainer's train mode "
                             "literally: test batches also update the running averages)")
    parser.add_argument('--test-subset', type=int, help='first N test images only')
    parser.add_argument('--seed', type=int, default=0, help='seed of PGD random starts')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    parser.add_argument('--mnist-dir', help='MNIST folder')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args()
    if not 0 <= args.epsilon <= 255:
        raise UserError('--epsilon must be an integer pixel distance in 0..255')
    victim, settings = load_model(args.victim, args.device)
    source = load_model(args.source, args.device)[0] if args.source else None
    x, t = test_set(args.test_subset, args.mnist_dir)
    result = evaluate(victim, x, t, source, args.attack, args.epsilon, args.bn_mode,
                      device=args.device, seed=args.seed)
    print('%s (%s): %s' % (settings['network'], args.victim, json.dumps(result)))
    if args.json:
        write_json(args.json, {'victim': args.victim, 'source': args.source,
                               'epsilon': args.epsilon, 'bn_mode': args.bn_mode,
                               'accuracy_percent': result,
                               'provenance': provenance(args.device, seed=args.seed)})


if __name__ == '__main__':
    run_main(main)
