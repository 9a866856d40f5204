"""counting/test.py's numbers on a constructed prediction whose MAE, RMSE, exact accuracy and
confusion table are known by hand."""
import math
import re

import numpy as np
import pytest

from counting import test as count_test

TYPES = ['tri', 'sq']
TRUTH = np.array([[0, 1], [2, 3], [1, 1], [3, 0]], dtype=np.float32)
ERROR = np.array([[0.2, -0.4], [0.6, 0.0], [-1.0, 0.3], [0.0, 0.4]])
PRED = TRUTH + ERROR
# rounded: tri 0, 3, 0, 3 (right, wrong, wrong, right); sq 1, 3, 1, 0 (all right)
BASELINE = np.array([1.5, 1.0])


def test_count_metrics_by_hand():
    m = count_test.count_metrics(PRED, TRUTH, TYPES, BASELINE)
    tri, sq = m['per_type']['tri'], m['per_type']['sq']
    assert m['images'] == 4
    assert tri['mae'] == pytest.approx((0.2 + 0.6 + 1.0 + 0.0) / 4)
    assert tri['rmse'] == pytest.approx(math.sqrt((0.04 + 0.36 + 1.0) / 4))
    assert sq['mae'] == pytest.approx((0.4 + 0.3 + 0.4) / 4)
    assert sq['rmse'] == pytest.approx(math.sqrt((0.16 + 0.09 + 0.16) / 4))
    assert tri['exact_accuracy'] == 0.5 and sq['exact_accuracy'] == 1.0
    assert m['exact_accuracy_all_types'] == 0.5
    assert m['mae'] == pytest.approx((1.8 + 1.1) / 8)
    assert tri['baseline_mae'] == pytest.approx((1.5 + 0.5 + 0.5 + 1.5) / 4)
    assert sq['baseline_mae'] == pytest.approx((0 + 2 + 0 + 1) / 4)
    assert tri['baseline_prediction'] == 1.5
    # total count error per image: 0.2 - 0.4, 0.6, -1.0 + 0.3, 0.4
    assert m['total_count_mae'] == pytest.approx((0.2 + 0.6 + 0.7 + 0.4) / 4)


def parse_confusion(markdown):
    """{type: (column labels, {true count: row of counts})} from confusion()'s tables."""
    tables, kind = {}, None
    for line in markdown.splitlines():
        heading = re.match(r'### (\w+):', line)
        if heading:
            kind = heading.group(1)
        elif line.startswith('| true'):
            tables[kind] = ([int(c) for c in line.split('|')[2:-1]], {})
        elif re.match(r'\| \d+ \|', line):
            cells = [int(c) for c in line.split('|')[1:-1]]
            tables[kind][1][cells[0]] = cells[1:]
    return tables


def test_confusion_table_by_hand():
    tables = parse_confusion(count_test.confusion(PRED, TRUTH, TYPES))
    columns, rows = tables['tri']
    assert columns == [0, 1, 2, 3]
    assert rows == {0: [1, 0, 0, 0], 1: [1, 0, 0, 0], 2: [0, 0, 0, 1], 3: [0, 0, 0, 1]}
    columns, rows = tables['sq']
    assert columns == [0, 1, 2, 3]
    assert rows == {0: [1, 0, 0, 0], 1: [0, 2, 0, 0], 2: [0, 0, 0, 0], 3: [0, 0, 0, 1]}


def test_confusion_shows_negative_and_overshooting_predictions():
    truth = np.array([[0], [1]], dtype=np.float32)
    tables = parse_confusion(count_test.confusion(np.array([[-1.2], [3.1]]), truth, ['sq']))
    columns, rows = tables['sq']
    assert columns == [-1, 0, 1, 2, 3]
    assert rows == {0: [1, 0, 0, 0, 0], 1: [0, 0, 0, 0, 1]}
