"""Test-set evaluation: Keras' own metrics plus the chapter's per-class and regression views."""
