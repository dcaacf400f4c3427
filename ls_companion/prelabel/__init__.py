"""``prelabel``: bulk pre-labelling of an existing project through Label Studio (issue 16)."""

from ls_companion.prelabel.plan import ChunkSizer
from ls_companion.prelabel.run import VIAS, PrelabelResult, Via, run_prelabel

__all__ = ["VIAS", "ChunkSizer", "PrelabelResult", "Via", "run_prelabel"]
