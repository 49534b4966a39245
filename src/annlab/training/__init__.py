"""Compile and fit: optimizers, callbacks, determinism, and the fit loop itself."""
