"""The quality engine: pure functions over one tidy table of annotations (see ``docs/quality.md``).

Entry point for a project: ``ls_companion.quality.engine.compute_project_quality``. Nothing is imported
here, so that importing one module does not load crowd-kit and friends; the package holds only the
defaults that settings, the CLI and the sync share with the engine (light to import).
"""

#: Task agreement under which a task counts as low-agreement (flagged, escalated).
LOW_AGREEMENT = 0.6
#: Escalation never raises a task's ``overlap`` above this many annotators.
MAX_OVERLAP = 5
