"""Safety analytics over the staged tables: pure pandas functions, one job per module, no Airflow.

`clinic_pipeline.safety.marts.build_marts` reads the staged tables, runs these in order and writes the marts.
"""
