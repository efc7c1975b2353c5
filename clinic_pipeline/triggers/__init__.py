"""Event triggers for Airflow asset watchers: landing markers (embedded default) and Redis Streams (production).

Both are wake-up signals only: the DAG each one starts processes every batch not yet in the ledger.
"""
