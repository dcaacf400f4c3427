"""ls-companion's ML backend for Label Studio: pre-labels with uncertainty, background retraining, versions."""

from ls_companion import __version__

__all__ = ["__version__"]
