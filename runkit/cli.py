"""Command-line plumbing: bad input ends as one line on stderr (exit 2), never a traceback."""
import argparse
import sys


class UserError(Exception):
    """A problem with what the user gave (file, option, setting); the message says what to do."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise UserError (one line) instead of printing usage."""

    def error(self, message):
        raise UserError('%s (see %s --help)' % (message, self.prog))


def run_main(main):
    """Run main(); turn UserError (and Ctrl-C) into a one-line message and an exit status."""
    try:
        return main()
    except UserError as err:
        print('error: %s' % err, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted: rerun the same command (with --resume where offered) to continue',
              file=sys.stderr)
        sys.exit(130)


def int_arg(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text) from None


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


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError('must be positive, got %s' % text)
    return value
