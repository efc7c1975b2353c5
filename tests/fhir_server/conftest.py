"""The fixtures of fixtures.py, for the tests of this package (other packages import them the same way)."""

from tests.fhir_server.fixtures import fault_proxy, fhir_server, fresh_fhir_server, validating_fhir_server

__all__ = ["fault_proxy", "fhir_server", "fresh_fhir_server", "validating_fhir_server"]
