"""Security policy for plugin manifests: one entry point that returns every violation at once.

Public surface (used by the CLI, the admission webhook and the operator alike):

    report = validate_manifest(raw_mapping, config=PolicyConfig())
    report.valid            -> bool (no errors)
    report.errors           -> tuple[Violation, ...]   each has .field (dotted path) and .message
    report.warnings         -> tuple[Violation, ...]   e.g. legacy trait aliases
    report.manifest         -> PluginManifest | None   the parsed model when structurally valid
"""
