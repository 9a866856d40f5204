"""Command-line plumbing: bad input ends as one line on stderr, never a traceback."""
import sys


class UserError(Exception):
    """A problem with what the user gave (file, option, setting); the message says what to do."""


def run_main(main):
    """Run main(); turn UserError (and Ctrl-C) into a one-line message and exit status 2."""
    try:
        return main()
    except UserError as err:
        print('error: %s' % err, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted: rerun the same command (with --resume where offered) to continue',
              file=sys.stderr)
        sys.exit(130)
