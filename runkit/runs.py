"""Where training runs live ($LENSES_RUNS, else runs/ in the checkout; one subfolder per
package), and what one run folder holds (RunFolder)."""
import json
import os

ENV_VAR = 'LENSES_RUNS'
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The trainer snapshots of runkit.training.Snapshot: the newest, and the one before it.
SNAPSHOT = 'snapshot'
PREVIOUS = SNAPSHOT + '.previous'


def runs_root(package):
    """Folder holding `package`'s run folders (created on first write, not here)."""
    return os.path.join(os.environ.get(ENV_VAR) or os.path.join(CHECKOUT, 'runs'), package)


def json_form(obj):
    """`obj` as it reads back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(obj))


class RunFolder:
    """One training run's folder: settings.json (the run's record: its settings, provenance,
    and `finished` once model.npz is written), model.npz, the per-epoch `log` (Chainer's
    LogReport) and the trainer snapshots of runkit.training.Snapshot."""

    def __init__(self, path):
        self.path = path
        self.settings_path = os.path.join(path, 'settings.json')
        self.model_path = os.path.join(path, 'model.npz')
        self.log_path = os.path.join(path, 'log')

    def record(self):
        """settings.json as a dict; None where there is none, or no JSON object in it."""
        try:
            with open(self.settings_path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def finished_record(self):
        """The record of a run that finished (model.npz written), else None; the caller checks
        that its settings are the ones it wants."""
        if not os.path.exists(self.model_path):
            return None
        record = self.record()
        return record if record and record.get('finished') else None

    def read_log(self):
        """The per-epoch log entries."""
        with open(self.log_path) as f:
            return json.load(f)

    def snapshots(self):
        """The snapshots here, newest first."""
        paths = (os.path.join(self.path, name) for name in (SNAPSHOT, PREVIOUS))
        return [path for path in paths if os.path.exists(path)]
