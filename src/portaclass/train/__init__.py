"""Training: options, the runner wiring data, models and fitting into a run
folder, callbacks, and the quickstart."""
