"""Check suites: the YAML format, PyDeequ compilation and row-level quarantine."""
