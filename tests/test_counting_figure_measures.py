"""The figure measures on constructed maps with known answers."""
import numpy as np
import pytest

from counting import figure_measures as fm, saliency as sal


def square_image(size=40, lo=10, hi=30):
    on = np.zeros((size, size), dtype=bool)
    on[lo:hi, lo:hi] = True
    return on


def test_picture_power_inversion_recovers_the_map():
    rng = np.random.default_rng(0)
    s = rng.random((30, 30)) ** 3
    s[3, 4] = 2.0                                   # the maximum
    back = fm.invert_picture(sal.picture(s))
    # rounding to 0..255 after the 1/10 power loses at most one level of p
    p = (s / s.max()) ** 0.1 * 255
    bound = np.maximum(np.abs(((p + 0.5) / 255) ** 10 - (p / 255) ** 10),
                       np.abs(((np.maximum(p - 0.5, 0)) / 255) ** 10 - (p / 255) ** 10))
    assert np.all(np.abs(back - s / s.max()) <= bound + 1e-12)
    assert back[3, 4] == 1.0


def test_regions_of_a_square():
    on = square_image()
    parts = fm.regions(on, band=1)
    # the band: the square's outer ring (on) and the ring just outside it (off)
    ring = np.zeros_like(on)
    ring[9:31, 9:31] = True
    ring[11:29, 11:29] = False
    assert np.array_equal(parts['edge'] | parts['corners'], ring)
    assert np.array_equal(parts['interior'], square_image(lo=11, hi=29))
    # corners: near the four vertices only, never along the middle of a side
    rows, cols = np.nonzero(parts['corners'])
    assert len(rows) > 0
    assert np.all(np.minimum(np.abs(rows - 9.5), np.abs(rows - 29.5)) <= 3)
    assert np.all(np.minimum(np.abs(cols - 9.5), np.abs(cols - 29.5)) <= 3)
    # the four parts tile the image
    total = sum(p.astype(int) for p in parts.values())
    assert np.all(total == 1)


def test_a_map_that_is_one_on_edges_puts_everything_there():
    on = square_image()
    parts = fm.regions(on, band=1)
    edges = (parts['edge'] | parts['corners']).astype(float)
    edges_plus = edges + 0.01 * parts['background']      # a background mean to divide by
    r = fm.where_saliency_lies(edges_plus, on, band=1)
    assert r['interior']['relative_to_background'] == 0
    assert r['edge']['relative_to_background'] == pytest.approx(100)
    assert r['corners']['relative_to_background'] == pytest.approx(100)
    assert r['edge']['share'] + r['corners']['share'] + r['background']['share'] == \
        pytest.approx(1)


def test_uniform_map_is_one_everywhere_and_valid_mask_excludes_pixels():
    on = square_image()
    s = np.ones(on.shape)
    r = fm.where_saliency_lies(s, on, band=2)
    for name in fm.REGIONS:
        assert r[name]['relative_to_background'] == pytest.approx(1)
    assert sum(r[n]['share'] for n in fm.REGIONS) == pytest.approx(1)
    s[:, -3:] = 0                                    # unseen columns
    valid = np.ones(on.shape, dtype=bool)
    valid[:, -3:] = False
    assert fm.where_saliency_lies(s, on, 2, valid)['background']['relative_to_background'] == 1


def test_band_must_be_positive():
    with pytest.raises(ValueError, match='at least 1'):
        fm.regions(square_image(), band=0)


def test_selected_sets_cover_between_and_size():
    on = np.zeros((30, 60), dtype=bool)
    on[10:20, 5:15] = True                            # shape 1, 100 px
    on[10:20, 25:35] = True                           # shape 2, 100 px, 10 px gap
    half = np.zeros_like(on)
    half[10:20, 5:10] = True                          # half of shape 1
    gap = np.zeros_like(on)
    gap[12:14, 16:24] = True                          # between the two shapes
    far = np.zeros_like(on)
    far[25:27, 50:52] = True                          # background, next to no shape
    rows = fm.selected_sets([half, gap, far], on)
    assert rows[0]['shape_covered'] == pytest.approx(0.5)
    assert rows[0]['on_shape'] == 1 and rows[0]['between'] == 0
    assert rows[0]['fraction'] == pytest.approx(50 / 1800)
    assert rows[1]['between'] == 1 and rows[1]['on_shape'] == 0
    assert rows[1]['shape_covered'] == 0
    assert rows[2]['between'] == 0 and rows[2]['pixels'] == 4
    assert fm.selected_sets([half])[0] == {'pixels': 50, 'fraction': 50 / 1800}


def test_label_shapes_counts_separate_shapes():
    on = np.zeros((20, 20), dtype=bool)
    on[1:4, 1:4] = on[10:12, 10:15] = True
    labels, n = fm.label_shapes(on)
    assert n == 2 and fm.median_side(labels, n) == round(np.sqrt(9.5))


def test_pixel_count_fit_and_size_bias():
    counts = np.arange(10)
    exact = fm.pixel_count_fit(counts * 50.0, counts)
    assert exact['r2'] == pytest.approx(1) and exact['mae'] == pytest.approx(0, abs=1e-9)
    rng = np.random.default_rng(1)
    scales = rng.uniform(1, 3, size=10)
    noisy = fm.pixel_count_fit(counts * 50.0 * scales, counts)
    assert noisy['r2'] < 0.95
    bias = fm.size_bias([[2, 1], [3, 3]], [[1, 1], [2, 2]])
    assert bias == {'mean_signed_error': 1.5, 'mae': 1.5, 'images': 2}


def test_stride_grid_finds_a_grid_of_the_stride_period_only():
    from counting import chapter2
    rng = np.random.default_rng(2)
    smooth = 1 + rng.random((96, 96))
    keep = np.ones((96, 96), dtype=bool)
    grid = smooth.copy()
    grid[::2, ::2] *= 3                      # a stride-2 grid
    assert chapter2.stride_grid(grid, 2, keep) > 5
    assert 0.5 < chapter2.stride_grid(smooth, 2, keep) < 2
    assert 0.5 < chapter2.stride_grid(smooth, 4, keep) < 2
    assert chapter2.phase_contrast(np.ones((8, 8)), 2, np.ones((8, 8), dtype=bool)) == 0
    assert chapter2.network_periods([(3, 8, 4, 2, 1), (8, 8, 3, 1, 1), (8, 8, 4, 2, 1)]) == [2, 4]


def test_thesis_figure_files_are_read_and_measured(tmp_path):
    """A constructed stand-in for the thesis's figure folder: one square, saliency pictures
    that are bright on its edge band, masks covering half its outline."""
    from PIL import Image
    from counting import thesis_figures as tf
    on = np.zeros((1000, 1000), dtype=bool)
    on[300:500, 300:500] = True
    image = np.zeros((1000, 1000, 3), dtype=np.uint8)
    image[on] = (0, 0, 255)
    parts = fm.regions(on, tf.BAND)
    s = np.full((1000, 1000), 0.01)
    s[parts['edge'] | parts['corners']] = 1.0
    s[on & ~(parts['edge'] | parts['corners'])] = 0.001
    picture = sal.picture(s)
    mask = (parts['edge'] | parts['corners']) & (np.arange(1000)[None, :] < 400)
    for path in tf.all_files():
        full = tmp_path / 'putasideall' / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith(('001.png', '007.png')):
            Image.fromarray(image).save(full)
        elif 'saliency' in path:
            Image.fromarray(picture).save(full)
        else:
            Image.fromarray(mask).save(full)
    m = tf.measure(str(tmp_path))
    first = m['2.3/2.4'][0]
    assert first['shapes'] == 1
    assert first['regions']['edge']['relative_to_background'] == pytest.approx(100, rel=0.1)
    assert first['regions']['interior']['relative_to_background'] == pytest.approx(0.1, rel=0.2)
    step = first['sets'][0]
    assert step['in_band'] == 1 and 0.3 < step['outline_covered'] < 0.7
    assert m['2.7'][0]['sets'][0]['fraction'] == pytest.approx(mask.mean())
    (tmp_path / 'putasideall' / tf.all_files()[3]).unlink()
    from runkit.cli import UserError
    with pytest.raises(UserError, match="does not hold the thesis's figure files"):
        tf.measure(str(tmp_path))
