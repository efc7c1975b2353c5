"""What the Airflow DAGs wire together: settings, assets with their watchers, and task bodies."""
