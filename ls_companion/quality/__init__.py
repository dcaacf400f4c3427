"""The quality engine: pure functions over one tidy table of annotations (see ``docs/quality.md``).

Entry point for a project: ``ls_companion.quality.engine.compute_project_quality``. Nothing is imported
here, so that importing one module does not load crowd-kit and friends.
"""
