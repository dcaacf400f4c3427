"""ls-companion: active learning and annotation quality control for Label Studio Community Edition."""

__version__ = "0.1.0"

#: The key under which ls-companion keeps its own data in a task's ``meta`` object.
META_NAMESPACE = "ls_companion"
