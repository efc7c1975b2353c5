"""Safety analytics: rules configuration (`safety_rules.yaml`, `rules.py`) and the marts (`marts.py`)."""
