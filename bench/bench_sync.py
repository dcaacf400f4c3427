"""Speed and PATCH economy of the sync worker (printed figures, not a test).

A 10,000-task project on a Label Studio started here (SQLite, from ``.venv-ls``), 1,000 tasks labeled
by three annotators. Measured:
- the first (full) sync: tasks listed, stored, PATCHed, wall time, then the next one (nothing new:
  it lists again the tasks the first PATCHed and sends nothing);
- then 1 % of the tasks change (100 new annotations through the API) and an incremental sync runs:
  PATCH requests that reached Label Studio (counted by a proxy) against changed tasks, target <= 1.2x;
- a second incremental sync with no change: target 0 PATCH;
and, in the same run, the baseline: one plain listing of the whole project with data and annotations
(``LabelStudioClient.list_tasks``), which is what a naive sync would do every time.

Run: ``.venv/bin/python -m bench.bench_sync``
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import start_label_studio
from ls_companion.records import User
from ls_companion.settings import Settings
from ls_companion.sync.engine import SyncResult, sync_inline
from ls_companion.sync.options import SyncOptions
from tests.harness.fault_proxy import FaultProxy

N_TASKS = 10_000
N_LABELED = 1_000
N_CHANGED = 100  # 1 %
CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single"><Choice value="ham"/><Choice value="spam"/></Choices>
</View>"""


def choice(value: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def build_project(client: LabelStudioClient, users: list[User]) -> tuple[int, list[int]]:
    project = client.create_project(title="bench sync", label_config=CONFIG)
    tasks = []
    for i in range(N_TASKS):
        task: dict[str, Any] = {
            "data": {"text": f"message number {i} about {'prizes' if i % 3 else 'lunch'}"}
        }
        if i < N_LABELED:
            answers = ["spam", "spam", "ham"] if i % 4 == 0 else ["ham"] * 3
            task["annotations"] = [
                {"result": choice(a), "completed_by": u.id, "ground_truth": False, "lead_time": 4.0}
                for u, a in zip(users, answers, strict=True)
            ]
        tasks.append(task)
    ids = client.import_tasks(project.id, tasks, chunk_size=1000)
    return project.id, ids


def line(name: str, result: SyncResult, patches: int) -> None:
    steps = ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
    print(
        f"{name:<28} {result.seconds:7.2f} s  listed {result.tasks_listed:>6}  stored {result.tasks_written:>5}  "
        f"PATCH {result.patches:>5} (proxy counted {patches})  [{steps}]",
        flush=True,
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        server = start_label_studio(root / "ls", token=secrets.token_hex(20))
        try:
            run(server.url, server.token, root)
        finally:
            server.stop()


def run(url: str, token: str, root: Path) -> None:
    direct = LabelStudioClient(url, token)
    tag = secrets.token_hex(3)
    users = [direct.create_user(f"bench{k}-{tag}@example.com", password="pass-12345") for k in range(3)]
    started = time.perf_counter()
    project_id, ids = build_project(direct, users)
    print(
        f"project: {N_TASKS} tasks, {N_LABELED} labeled x 3 annotators, built in {time.perf_counter() - started:.1f} s"
    )

    with FaultProxy(url) as proxy:
        settings = Settings(label_studio_url=proxy.url, label_studio_api_key=token, data_dir=root / "data")
        client = LabelStudioClient.from_settings(settings)
        options = SyncOptions(retrain_after=0)

        started = time.perf_counter()
        listed = sum(1 for _ in direct.list_tasks(project_id))
        listing = time.perf_counter() - started
        print(f"{'baseline: one plain listing':<28} {listing:7.2f} s  listed {listed:>6}", flush=True)

        first = sync_inline(settings, client, project_id, options)
        line("first sync (full)", first, proxy.forwarded["PATCH"])
        # The next sync lists again what the first PATCHed (our PATCH bumps updated_at) and sends nothing.
        proxy.reset_counts()
        settle = sync_inline(settings, client, project_id, options)
        line("next sync, nothing new", settle, proxy.forwarded["PATCH"])

        # 1 %: 50 labeled tasks get a 4th answer, 50 unlabeled tasks their first.
        changed = ids[:50] + ids[N_LABELED : N_LABELED + 50]
        for task_id in changed:
            direct.create_annotation(task_id, choice("spam"), completed_by=users[0].id, lead_time=3.0)
        proxy.reset_counts()
        second = sync_inline(settings, client, project_id, options)
        patched = proxy.forwarded["PATCH"]
        line("sync after 1 % changed", second, patched)

        proxy.reset_counts()
        third = sync_inline(settings, client, project_id, options)
        line("sync with no change", third, proxy.forwarded["PATCH"])

    ratio = patched / len(changed)
    print()
    print(
        f"PATCH per changed task: {patched}/{len(changed)} = {ratio:.2f} (target <= 1.2): {'ok' if ratio <= 1.2 else 'MISSED'}"
    )
    no_patch = second.seconds - second.timings.get("patch", 0.0)
    print(
        f"incremental sync {second.seconds:.2f} s ({no_patch:.2f} s without its {second.patches} PATCH requests) "
        f"vs one plain listing {listing:.2f} s ({second.seconds / listing:.2f}x); "
        f"no-change sync {third.seconds:.2f} s, "
        f"{'0 PATCH: ok' if third.patches == 0 else f'{third.patches} PATCH: MISSED'}"
    )


if __name__ == "__main__":
    main()
