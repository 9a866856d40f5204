"""Attack a trained network on the 10,000 MNIST test images (thesis 3.3.1, Table 3.2).

    python friendly/attack.py results/weights/friendly/thesis/RS-seed1.npz \
        --source results/weights/friendly/thesis/source-seed2.npz
    python friendly/attack.py runs/friendly/thesis/S --source runs/friendly/thesis/source
    python friendly/attack.py runs/friendly/thesis/RS --bn-mode running --attack fgsm apgd square

A network is a run folder of friendly/train.py or a committed weights file listed in its
store's manifest.json (checksum verified). Clean accuracy, each attack white-box (made on the
victim itself) and, with --source, black-box (made on the source, shown to the victim); the
'transfer' attack is APGD made on the source. Default: the thesis's FGSM with eps = 77 (pixel
units, 0.3 * 255), Batch Renormalization on each test batch's statistics. The attacks
themselves live in friendly/attacks.py (every one keeps pixels integral in [0, 255]); each is
scored by friendly/robustness.py, with its own random stream per batch of 200 (--seed).
"""
import argparse
import json

from friendly import mnist, robustness, weights
from friendly.attacks import ATTACKS
from friendly.defaults import PROTOCOL
from friendly.networks import BN_MODES
from runkit.cli import Parser, UserError, non_negative_int, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import check_file, provenance, write_json


def main():
    parser = Parser(prog='friendly/attack.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('victim', help='run folder or committed weights file of the attacked '
                        'network')
    parser.add_argument('--source', help='run folder or weights file of the black-box source')
    parser.add_argument('--attack', nargs='+', default=['fgsm'],
                        choices=sorted(ATTACKS) + [robustness.TRANSFER],
                        help='attacks to run (thesis: fgsm; the others are beyond the thesis)')
    parser.add_argument('--epsilon', type=non_negative_int, default=PROTOCOL['epsilon'],
                        help='L-inf radius in pixel units (thesis: 77)')
    parser.add_argument('--bn-mode', default=PROTOCOL['bn_test_mode'], choices=BN_MODES,
                        help="Batch Renormalization at test time: 'batch' statistics (thesis) "
                             "or the learned 'running' averages")
    parser.add_argument('--test-subset', type=positive_int, help='first N test images only')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random starts')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    parser.add_argument('--mnist-dir', help='MNIST folder')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args()
    if args.epsilon > 255:
        raise UserError('--epsilon must be an integer pixel distance in 0..255')
    if robustness.TRANSFER in args.attack and not args.source:
        raise UserError('the transfer attack needs --source')
    device = get_device(args.device)
    if args.json:
        check_file(args.json)   # before the attacks, not after
    victim, name = weights.load_any(args.victim, args.device)
    source = weights.load_any(args.source, args.device)[0] if args.source else None
    x, t = mnist.test_set(args.test_subset, args.mnist_dir)
    columns = robustness.attack_columns(args.attack, black_box=source is not None)
    evaluator = robustness.Evaluator(source, device, {}, args.seed, chunk=robustness.EVAL_BATCH,
                                     columns=columns)
    result = evaluator.accuracy(victim, name, x, t, args.epsilon, args.bn_mode, list(columns))
    print('%s (%s): %s' % (name, args.victim, json.dumps(result)))
    if args.json:
        write_json(args.json, {'victim': args.victim, 'source': args.source,
                               'epsilon': args.epsilon, 'bn_mode': args.bn_mode,
                               'accuracy_percent': result,
                               'provenance': provenance(args.device, seed=args.seed)})


if __name__ == '__main__':
    run_main(main)
