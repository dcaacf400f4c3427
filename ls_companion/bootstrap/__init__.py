"""Bootstrap a Label Studio project from a YAML spec (``ls-companion bootstrap``)."""

from ls_companion.bootstrap.apply import BootstrapResult, Change, bootstrap
from ls_companion.bootstrap.spec import ProjectSpec, ResolvedSpec, load_spec

__all__ = ["BootstrapResult", "Change", "ProjectSpec", "ResolvedSpec", "bootstrap", "load_spec"]
