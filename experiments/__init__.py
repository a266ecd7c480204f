"""Experiment entry points. Run any of them with `python -m experiments.run --config configs/<name>.py`."""
