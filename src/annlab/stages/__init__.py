"""Entry points: one per DVC stage (reading params.yaml), and the Hydra app (composing conf/)."""
