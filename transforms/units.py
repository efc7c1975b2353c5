"""Unit conversion to the canonical unit of each measure, driven by the `code_maps/units.csv` table."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

CODE_MAPS = Path(__file__).with_name("code_maps")


@dataclass(frozen=True, slots=True)
class UnitRule:
    canonical_unit: str
    factor: float
    offset: float

    @property
    def is_conversion(self) -> bool:
        return self.factor != 1 or self.offset != 0

    def apply(self, value: float) -> float:
        return value * self.factor + self.offset


@functools.cache
def unit_rules() -> dict[tuple[str, str], UnitRule]:
    """(unit system, unit code) -> rule. Systems: MDC (IEEE 11073 numeric), UCUM, LOCAL (EHR free text)."""
    with (CODE_MAPS / "units.csv").open(encoding="utf-8") as f:
        return {
            (row["unit_system"], row["unit_code"]): UnitRule(
                row["canonical_unit"], float(row["factor"]), float(row["offset"])
            )
            for row in csv.DictReader(f)
        }


def unit_rule(system: str, code: str) -> UnitRule | None:
    return unit_rules().get((system, code))
