"""The sync worker (issue 6): pull annotations, score them, write quality back, keep the loop turning.

Entry points: ``ls_companion.sync.engine.run_sync`` (one sync, any mode), the rq jobs in
``ls_companion.sync.jobs``, and the ``sync``/``worker``/``schedule``/``status`` commands. Nothing heavy
is imported here, so that the project spec can use ``SyncOptions`` cheaply. See docs/sync.md.
"""

from ls_companion.sync.options import SyncOptions, TopupOptions

__all__ = ["SyncOptions", "TopupOptions"]
