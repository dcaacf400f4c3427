"""``prelabel``: bulk pre-labelling of an existing project through Label Studio (issue 16)."""

from ls_companion.prelabel.plan import ChunkSizer
from ls_companion.prelabel.run import PrelabelResult, run_prelabel

__all__ = ["ChunkSizer", "PrelabelResult", "run_prelabel"]
