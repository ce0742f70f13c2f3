"""Engine, sessions, models and migrations glue: the one shared layer."""
