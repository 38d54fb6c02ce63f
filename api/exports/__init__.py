"""Exports: an experiment's results as CSV (streamed) and as TensorBoard event files."""
