"""Dataset-card templates and per-source licence/citation cards, read with importlib.resources."""
