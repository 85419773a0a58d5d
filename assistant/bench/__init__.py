"""Benchmarks of the appliance: per-tier speed, energy and quality, speech stages, end to end, idle cost."""
