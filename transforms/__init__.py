"""Pure staging logic for the clinic pipeline: typed, unit-checked, tested functions that never import Airflow."""
