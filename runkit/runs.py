"""Where training runs live: $LENSES_RUNS, else runs/ in the checkout; one subfolder per package."""
import os

ENV_VAR = 'LENSES_RUNS'
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runs_root(package):
    """Folder holding `package`'s run folders (created on first write, not here)."""
    return os.path.join(os.environ.get(ENV_VAR) or os.path.join(CHECKOUT, 'runs'), package)
