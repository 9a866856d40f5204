"""Table 3.2's measurement written out directly, for the tests to hold the library to: on test
batches of 200, a victim's accuracy (%) clean, after FGSM made on itself (white-box) and after
FGSM made on the source (black-box), in the thesis's 'batch' test mode."""

from friendly import attacks

EPSILON = 77


def fgsm_accuracy(victim, source, x, t, epsilon=EPSILON):
    right = {'clean': 0, 'white_box_fgsm': 0, 'black_box_fgsm': 0}
    for start in range(0, len(x), 200):
        xb, tb = x[start:start + 200], t[start:start + 200]
        for key, images in (('clean', xb),
                            ('white_box_fgsm', attacks.fgsm(victim, xb, tb, epsilon)),
                            ('black_box_fgsm', attacks.fgsm(source, xb, tb, epsilon))):
            right[key] += int((attacks.predict(victim, images, 'batch').argmax(axis=1)
                               == tb).sum())
    return {key: round(100.0 * n / len(x), 2) for key, n in right.items()}
