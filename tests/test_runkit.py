"""runkit: one-line errors, devices, atomic writes, and the resumable shuffle."""
import os
import subprocess
import sys

import chainer
import numpy as np
import pytest

from runkit import cli, devices, provenance
from runkit.renorm import BatchRenormalization
from runkit.training import ShuffleOrder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parser_errors_are_user_errors():
    parser = cli.Parser(prog='x.py')
    parser.add_argument('--n', type=cli.positive_int)
    with pytest.raises(cli.UserError, match=r'--n: must be a positive integer, got 0 \(see x.py'):
        parser.parse_args(['--n', '0'])
    with pytest.raises(cli.UserError, match='unrecognized arguments: --m'):
        parser.parse_args(['--m'])


@pytest.mark.parametrize('spec, message', [('bogus', "unknown device 'bogus'"),
                                           ('@cupy:x', 'device @cupy:x is not usable here')])
def test_bad_devices_are_one_line_errors(spec, message):
    with pytest.raises(cli.UserError, match=message) as err:
        devices.get_device(spec)
    assert '\n' not in str(err.value)


def test_scripts_turn_a_bad_device_into_one_line():
    for argv in (['friendly/train.py', 'S'], ['friendly/evaluate.py'],
                 ['counting/train.py'], ['counting/test.py']):
        done = subprocess.run([sys.executable, os.path.join(ROOT, argv[0])] + argv[1:]
                              + ['--device', 'bogus'], capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.strip() == "error: unknown device 'bogus'; use '@numpy' or " \
                                      "'@cupy:<gpu id>'"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / 'a.txt')
    provenance.write_text(path, 'old')

    def fail(tmp):
        with open(tmp, 'w') as f:
            f.write('half')
        raise RuntimeError('disk full')
    with pytest.raises(RuntimeError):
        provenance.atomic_write(path, fail)
    assert open(path).read() == 'old' and os.listdir(str(tmp_path)) == ['a.txt']


def test_shuffle_order_state_survives_serialization():
    order = ShuffleOrder(3)
    order(np.arange(10), 0)
    saved = chainer.serializers.DictionarySerializer()
    order.serialize(saved)
    expected = [order(np.arange(10), 0) for _ in range(3)]
    resumed = ShuffleOrder(99)
    resumed.serialize(chainer.serializers.NpzDeserializer(saved.target))
    for e in expected:
        np.testing.assert_array_equal(resumed(np.arange(10), 0), e)


def test_rmax_dmax_are_saved_with_the_link(tmp_path):
    link = BatchRenormalization(4, decay=0.9)
    link.rmax = link.dmax = 10.0
    chainer.serializers.save_npz(str(tmp_path / 'l.npz'), link)
    fresh = BatchRenormalization(4, decay=0.9)
    chainer.serializers.load_npz(str(tmp_path / 'l.npz'), fresh)
    assert (fresh.rmax, fresh.dmax) == (10.0, 10.0)
