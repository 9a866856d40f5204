"""The scripts end to end on a tiny dataset, and bad input as a one-line error with status 2."""
import json
import os
import re
import subprocess
import sys

import pytest

import gpu
from counting import defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, ok=True):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'counting', script)] +
                          [str(a) for a in args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_one_line_error(proc, fragment):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize('args,fragment', [
    (['-3', '5'], 'NUM_IMAGES'),
    (['5', '-1'], 'SHAPE_LIMIT'),
    (['5', 'x'], 'not an integer'),
    (['5', '3', '--scale-bounds', '9', '4'], 'LO <= HI'),
    (['5', '3', '--image-width', '0'], 'positive'),
    (['5', '3', '--shape-color', '0', '0', '300'], 'shape-color'),
    (['5', '3', '--shape-types', 'circle'], 'invalid choice'),
    (['5', '50', '--image-width', '100', '--image-height', '100', '--scale-bounds', '400',
      '400'], 'cannot fit'),
])
def test_sample_rejects_bad_input(tmp_path, args, fragment):
    proc = run('sample.py', tmp_path / 'out', *args, ok=False)
    assert_one_line_error(proc, fragment)
    assert not os.path.exists(tmp_path / 'out')


def test_sample_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    proc = run('sample.py', tmp_path / 'mine', 2, 1, '--image-width', 40, '--image-height', 40,
               ok=False)
    assert_one_line_error(proc, 'not an earlier dataset')
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep me'


def test_sample_into_an_unwritable_place_is_one_line(tmp_path):
    (tmp_path / 'a_file').write_text('')
    proc = run('sample.py', tmp_path / 'a_file' / 'out', 2, 1, '--image-width', 40,
               '--image-height', 40, ok=False)
    assert_one_line_error(proc, 'cannot write in %s' % (tmp_path / 'a_file'))


def test_other_scripts_report_bad_input(tmp_path):
    assert_one_line_error(run('test.py', tmp_path / 'none', ok=False), 'no finished run')
    assert_one_line_error(run('detect.py', tmp_path / 'none', ok=False), 'no finished run')
    assert_one_line_error(run('train.py', '--epochs', '0', ok=False), 'positive')
    assert_one_line_error(run('train.py', '--dataset', tmp_path / 'none', ok=False),
                          'truths file not found')


def test_chapter2_inputs_are_checked(tmp_path):
    (tmp_path / 'figures').mkdir()
    assert_one_line_error(run('make_results.py', '--thesis-figures', tmp_path / 'figures',
                              ok=False), "does not hold the thesis's figure files")
    data = tmp_path / 'wide'
    run('sample.py', data, 4, 2, '--image-width', 122, '--image-height', 96,
        '--scale-bounds', 8, 12)
    assert_one_line_error(run('train.py', '--dataset', data, '--out', tmp_path / 'r',
                              '--batch-size', 2, '--no-progress', ok=False),
                          'cannot see columns 119-121')
    assert_one_line_error(run('train.py', '--dataset', data, '--out', tmp_path / 'r',
                              '--no-progress', ok=False), '--batch-size 20 is larger than the 3')
    line = assert_one_line_error(run('train.py', '--preset', 'thesis', '--epochs', 2, ok=False),
                                 "preset thesis is a GPU's work: one training image took ")
    seconds, days = re.search(r'took ([\d.]+) s .* so 2 epochs x 3600 images take at least '
                              r'([\d.]+) days', line).groups()
    assert float(days) == pytest.approx(float(seconds) * 3600 * 2 / 86400, abs=0.06)
    assert '--yes to run it here anyway' in line


def test_runs_are_never_silently_overwritten_and_datasets_are_checked(tmp_path):
    data, out = tmp_path / 'data', tmp_path / 'run'
    run('sample.py', data, 12, 2, '--image-width', 96, '--image-height', 96, '--scale-bounds',
        8, 12)
    args = ['--dataset', data, '--out', out, '--epochs', 1, '--batch-size', 4, '--no-progress',
            '--workers', 1]
    run('train.py', *args)
    assert_one_line_error(run('train.py', *args, ok=False), 'already holds a finished run of '
                          'these settings; pass --force')
    assert_one_line_error(run('train.py', *args[:-3], '--lr', 0.5, '--no-progress', ok=False),
                          'of other settings')
    run('train.py', *args, '--force')
    (out / 'model.npz').unlink()
    (out / 'snapshot_epoch_1').write_bytes(b'')
    assert_one_line_error(run('train.py', *args, ok=False), 'holds an interrupted run')
    (data / 'decoded.npy').write_bytes(b'\x93NUMPY')            # a truncated cache
    first = sorted(p for p in os.listdir(data) if p.endswith('.png'))[0]
    (data / first).write_bytes(b'not a png')
    (data / 'decoded.json').unlink()
    assert_one_line_error(run('train.py', *args, '--force', ok=False),
                          '%s is not a readable image' % (data / first))


@pytest.mark.parametrize('script', ['train.py', 'test.py', 'detect.py'])
def test_unknown_device_is_one_line(script):
    assert_one_line_error(run(script, '--device', 'bogus', ok=False), "unknown device 'bogus'")


@pytest.mark.skipif(gpu.available(), reason='a GPU is usable here')
def test_gpu_device_without_gpu_is_one_line():
    assert_one_line_error(run('test.py', '--device', '@cupy:0', ok=False), '@cupy:0')


@pytest.mark.parametrize('script', ['test.py', 'detect.py'])
def test_a_run_of_another_package_is_refused(script, tmp_path):
    folder = tmp_path / 'friendly_run'
    folder.mkdir()
    (folder / 'settings.json').write_text(json.dumps(
        {'settings': {'network': 'S', 'seed': 1}, 'finished': True}))
    (folder / 'model.npz').write_bytes(b'')
    assert_one_line_error(run(script, folder, ok=False), 'is not a counting run')


def test_pipeline_end_to_end(tmp_path):
    data, out = tmp_path / 'data', tmp_path / 'run'
    run('sample.py', data, 60, 3, '--image-width', 96, '--image-height', 96, '--scale-bounds',
        8, 14, '--seed', 2, '--workers', 2)
    run('train.py', '--dataset', data, '--out', out, '--epochs', 2, '--snapshot-every', 1,
        '--lr-stages', 2, '--no-progress', '--workers', 1)
    settings = json.loads((out / 'settings.json').read_text())
    assert settings['provenance']['commit'] and settings['epochs'] == 2
    assert settings['lr_stages'] == 2 and settings['finished']
    log = json.loads((out / 'log').read_text())
    lr = defaults.TRAIN_PRESETS['small']['lr']
    assert [entry['lr'] for entry in log] == pytest.approx([lr, lr / 10])
    assert (out / 'snapshot_epoch_2').exists() and (out / 'loss.png').exists()
    proc = run('train.py', '--dataset', data, '--out', out, '--epochs', 3, '--resume',
               '--lr-stages', 2, '--no-progress')
    assert 'resumed from' in proc.stdout and 'epoch 2' in proc.stdout
    run('test.py', out)
    metrics = json.loads((out / 'test' / 'metrics.json').read_text())
    assert set(metrics['per_type']) == {'tri', 'sq'} and (out / 'test' / 'scatter.png').exists()
    run('detect.py', out, '--images', 2, '--sweep')
    result = json.loads((out / 'detect' / 'metrics.json').read_text())
    assert result['metrics']['images'] == 2
    assert (out / 'detect' / 'sweep.md').exists()


def test_detect_reports_relu_networks(tmp_path):
    data, out = tmp_path / 'data', tmp_path / 'run'
    run('sample.py', data, 20, 2, '--image-width', 96, '--image-height', 96, '--scale-bounds',
        8, 14)
    run('train.py', '--dataset', data, '--out', out, '--epochs', 1, '--activation', 'relu',
        '--batch-size', 6, '--no-progress', '--workers', 1)
    proc = run('detect.py', out, '--images', 1, ok=False)
    assert_one_line_error(proc, 'second derivative of zero')
    run('detect.py', out, '--images', 1, '--saliency-only')
