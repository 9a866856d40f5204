"""Speed of the thesis protocol's two hot loops on this machine, against their targets.

    python friendly/benchmarks/bench.py [--iterations 2000] [--device @numpy]

1. Training S: milliseconds per iteration at batch 20 (the StandardUpdater of train.py:
   iterator, forward, backward, momentum SGD update). Target on a 2-core CPU: <= 2 ms.
2. Evaluating one victim (S) on the 10,000 test images: clean + white-box FGSM, batches of 200.
   Target on CPU: <= 10 s.
3. The CUDA sigmoid arithmetic (train.py --arithmetic cuda): training GMRES (Elastic Sigmoid,
   GMR's double backward) with it over training with the device's own, measured in one run.
   Target: ratio <= 1.5.
Prints each figure next to its target; the network is freshly initialised (speed only).
"""
import argparse
import time

import friendly  # noqa: F401  (its Chainer compatibility patches before chainer loads)
import chainer

from friendly import mnist, robustness
from friendly.defaults import NETWORKS, PROTOCOL
from friendly.networks import ARITHMETICS, build_network
from friendly.objective import Objective
from runkit import cli
from runkit.devices import get_device
from runkit.provenance import provenance


def synchronize(device):
    if device.xp is not chainer.backend.CpuDevice().xp:
        device.device.synchronize()


def time_training(name, iterations, device, arithmetic='device'):
    (x, y), _ = mnist.load_mnist()
    net = build_network(name, arithmetic)
    objective = Objective(net, NETWORKS[name].gmr_weight)
    objective.to_device(device)
    optimizer = chainer.optimizers.MomentumSGD(NETWORKS[name].lr, PROTOCOL['momentum'])
    optimizer.setup(objective)
    iterator = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, y),
                                                PROTOCOL['batch_size'])
    updater = chainer.training.StandardUpdater(iterator, optimizer, device=device)
    for _ in range(50):  # warm-up
        updater.update()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(iterations):
        updater.update()
    synchronize(device)
    return (time.perf_counter() - started) / iterations, net


def main():
    parser = cli.Parser(description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iterations', type=cli.positive_int, default=2000,
                        help='timed training steps')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    args = parser.parse_args()
    device = get_device(args.device)
    print('device: %s, commit %s' % (provenance(device)['device'], provenance()['commit']))
    per_iteration, net = time_training('S', args.iterations, device)
    print('train S: %.3f ms/iteration at batch %d (%d iterations; target <= 2 ms on CPU) %s'
          % (1e3 * per_iteration, PROTOCOL['batch_size'], args.iterations,
             'PASS' if per_iteration <= 2e-3 else 'MISS'))
    x, t = mnist.test_set()
    started = time.perf_counter()
    result = robustness.Evaluator(None, device, {}, chunk=robustness.EVAL_BATCH).accuracy(
        net, 'S', x, t, PROTOCOL['epsilon'], PROTOCOL['bn_test_mode'], ['white_box_fgsm'])
    seconds = time.perf_counter() - started
    print('evaluate S on %d test images (clean + white-box FGSM): %.2f s (target <= 10 s) %s'
          % (len(x), seconds, 'PASS' if seconds <= 10 else 'MISS'))
    print('  (untrained network, speed only: %s)' % result)
    iterations = max(args.iterations // 4, 1)
    ms = {a: 1e3 * time_training('GMRES', iterations, device, a)[0] for a in ARITHMETICS}
    ratio = ms['cuda'] / ms['device']
    print('train GMRES with the CUDA sigmoid arithmetic: %.3f ms/iteration against %.3f with '
          'the device\'s own (%d iterations each): ratio %.2f (target <= 1.5) %s'
          % (ms['cuda'], ms['device'], iterations, ratio, 'PASS' if ratio <= 1.5 else 'MISS'))


if __name__ == '__main__':
    cli.run_main(main)
