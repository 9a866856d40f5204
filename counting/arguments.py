"""argparse for counting scripts: a bad option ends as friendly.cli's one-line error (exit 2)."""
import argparse

from friendly.cli import UserError


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise UserError instead of printing usage and exiting."""

    def error(self, message):
        raise UserError('%s (see %s --help)' % (message, self.prog))


def positive_int(text):
    value = int_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, got %s' % text)
    return value


def non_negative_int(text):
    value = int_arg(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be zero or more, got %s' % text)
    return value


def int_arg(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text) from None


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError('must be positive, got %s' % text)
    return value
