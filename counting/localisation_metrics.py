"""Numbers for what the thesis showed as pictures: found pixel sets vs ground-truth shapes.

Per image, with L the label map of the drawn shapes (0 = background, k + 1 = shape k):
- pointing game: the seed pixel lies on a shape;
- mask precision / recall against the seed's shape (seeds on a shape only);
- box IoU with one-to-one greedy matching (highest IoU first), F1 at IoU >= 0.5;
- double hits: shapes that two or more found sets land on (a set lands on the shape holding most
  of its pixels, or on the seed's shape when its pixels touch none).
Counts are summed over images, so rates are micro-averages.
"""
import numpy as np


def shape_boxes(labels, n_shapes):
    """Inclusive pixel boxes of each drawn shape (None for a shape with no pixels)."""
    boxes = []
    for k in range(1, n_shapes + 1):
        rows, cols = np.nonzero(labels == k)
        boxes.append(None if len(rows) == 0 else
                     (int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())))
    return boxes


def box_iou(a, b):
    """IoU of inclusive pixel boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def greedy_match(iou):
    """One-to-one (pred, truth) pairs, repeatedly taking the highest remaining IoU > 0."""
    iou = np.array(iou, dtype=float)
    pairs = []
    if iou.size == 0:
        return pairs
    while True:
        p, t = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[p, t] <= 0:
            return pairs
        pairs.append((int(p), int(t), float(iou[p, t])))
        iou[p, :] = -1
        iou[:, t] = -1


def image_counts(found, labels, n_shapes, iou_hit=0.5):
    """Summable counts for one image (see module docstring)."""
    truth_boxes = [b for b in shape_boxes(labels, n_shapes) if b is not None]
    pred_boxes = [f['box'] for f in found if f['box'] is not None]
    c = {'images': 1, 'shapes': len(truth_boxes), 'sets': len(found),
         'boxes': len(pred_boxes), 'seeds_on_shape': 0, 'precision_sum': 0.0,
         'recall_sum': 0.0, 'masks_scored': 0, 'matched': 0, 'matched_iou_sum': 0.0,
         'true_positives': 0, 'shapes_hit': 0, 'shapes_double_hit': 0, 'empty_sets': 0}
    landed = []
    for f in found:
        seed_label = int(labels[f['seed']])
        mask = f['mask']
        if seed_label > 0:
            c['seeds_on_shape'] += 1
            if mask.any():
                shape = labels == seed_label
                inter = float((mask & shape).sum())
                c['precision_sum'] += inter / mask.sum()
                c['recall_sum'] += inter / shape.sum()
                c['masks_scored'] += 1
        if not mask.any():
            c['empty_sets'] += 1
        on = labels[mask]
        on = on[on > 0]
        landed.append(int(np.bincount(on).argmax()) if len(on) else seed_label)
    hits = np.bincount([s for s in landed if s > 0], minlength=n_shapes + 1)[1:]
    c['shapes_hit'] = int((hits >= 1).sum())
    c['shapes_double_hit'] = int((hits >= 2).sum())
    if pred_boxes and truth_boxes:
        iou = [[box_iou(p, t) for t in truth_boxes] for p in pred_boxes]
        for _, _, v in greedy_match(iou):
            c['matched'] += 1
            c['matched_iou_sum'] += v
            c['true_positives'] += int(v >= iou_hit)
    return c


def add(total, counts):
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v
    return total


def summarise(total):
    """Rates from summed counts."""
    def ratio(a, b):
        return float(a) / b if b else None
    tp = total.get('true_positives', 0)
    precision = ratio(tp, total.get('boxes', 0))
    recall = ratio(tp, total.get('shapes', 0))
    f1 = (2 * precision * recall / (precision + recall)
          if precision and recall else 0.0)
    return {
        'images': total.get('images', 0), 'shapes': total.get('shapes', 0),
        'found_sets': total.get('sets', 0),
        'pointing_game': ratio(total.get('seeds_on_shape', 0), total.get('sets', 0)),
        'mask_precision': ratio(total.get('precision_sum', 0), total.get('masks_scored', 0)),
        'mask_recall': ratio(total.get('recall_sum', 0), total.get('masks_scored', 0)),
        'mean_matched_box_iou': ratio(total.get('matched_iou_sum', 0), total.get('matched', 0)),
        'box_precision_at_iou': precision, 'box_recall_at_iou': recall, 'box_f1_at_iou': f1,
        'double_hit_rate': ratio(total.get('shapes_double_hit', 0), total.get('shapes_hit', 0)),
        'empty_set_rate': ratio(total.get('empty_sets', 0), total.get('sets', 0)),
    }
