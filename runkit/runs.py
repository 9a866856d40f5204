"""Where training runs live: $LENSES_RUNS, else runs/ in the checkout; one subfolder per package."""
import json
import os

ENV_VAR = 'LENSES_RUNS'
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runs_root(package):
    """Folder holding `package`'s run folders (created on first write, not here)."""
    return os.path.join(os.environ.get(ENV_VAR) or os.path.join(CHECKOUT, 'runs'), package)


def json_form(obj):
    """`obj` as it reads back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(obj))


def finished_record(folder):
    """The settings.json record of a run folder whose run finished (model.npz written), else
    None; the caller checks that the record's settings are the ones it wants."""
    path = os.path.join(folder, 'settings.json')
    if not os.path.exists(path) or not os.path.exists(os.path.join(folder, 'model.npz')):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get('finished') else None
