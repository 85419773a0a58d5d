"""Register-level emulations of the gauge chips the UPS HATs carry, behind the drivers' bus interface."""
