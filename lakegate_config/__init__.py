"""The bottom room: configuration and endpoint helpers every other room may import.

`settings` (conf/<env>.yaml as typed objects), `yaml_document` (YAML with line numbers and
validation that names the field and its line), `endpoints` (loopback and port checks for the
servers) and `redaction` (credentials hidden in URIs). It imports only `lakegate_errors`.
"""
