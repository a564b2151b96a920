"""Training with Ultralytics: the run's training settings as its arguments, fine-tuning that keeps the pruned
structure, validation, and the embedded default (synthetic data set and the baseline trained on it)."""
