"""Static deployment tests: nothing here needs Docker, a network or a database.

Airflow is imported lazily (inside tests) for its CLI parser, configuration description, Connection class
and API routes; an AIRFLOW_HOME set by another conftest of the same session is kept, otherwise a private one
is used so that nothing is written to ~/airflow.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="clinic-airflow-deploy-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
