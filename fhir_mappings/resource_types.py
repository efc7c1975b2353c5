"""The R4 resource types the pipeline exports, in the order parents come before their children."""

RESOURCE_TYPES = (
    "Organization",
    "Patient",
    "Encounter",
    "MedicationAdministration",
    "Observation",
    "QuestionnaireResponse",
    "AdverseEvent",
    "Provenance",
)
