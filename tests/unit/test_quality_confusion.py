"""Label confusion between annotators: counts checked by hand on the SNOW 2008 crowd sets."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import pandas as pd
import pytest

from ls_companion.cli import main
from ls_companion.quality import confusion
from ls_companion.report.digest import guidelines_digest, snippet
from tests.conftest import SHARED_DATASETS


def hand_counts(name: str) -> Counter[tuple[str, str]]:
    """Pairs of annotators of one item by their two labels, counted with the csv module only."""
    by_item: dict[str, Counter[str]] = defaultdict(Counter)
    with (SHARED_DATASETS / name / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_item[row["item"]][row["label"]] += 1
    pairs: Counter[tuple[str, str]] = Counter()
    for labels in by_item.values():
        names = sorted(labels)
        for i, a in enumerate(names):
            pairs[(a, a)] += labels[a] * (labels[a] - 1) // 2
            for b in names[i + 1 :]:
                pairs[(a, b)] += labels[a] * labels[b]
    return pairs


@pytest.mark.parametrize("name", ["snow2008_rte", "snow2008_temp"])
def test_metrics_json_has_the_binary_confusion_counted_by_hand(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = SHARED_DATASETS / name / "labels.csv"
    assert main(["metrics", str(labels), "--json", "--methods", "majority_vote"]) == 0
    found = json.loads(capsys.readouterr().out)["confusion"]["label"]
    hand = hand_counts(name)
    low, high = sorted({label for pair in hand for label in pair})  # the task's two labels
    top = found["pairs"][0]
    assert sorted(top["labels"]) == [low, high] and len(found["pairs"]) == 1
    assert top["count"] == hand[(low, high)]
    assert found["n_pairs"] == sum(hand.values())
    i, j = found["labels"].index(low), found["labels"].index(high)
    assert found["matrix"][i][i] == hand[(low, low)] and found["matrix"][j][j] == hand[(high, high)]
    # Chance: shares of the 2n answers; expected 2 p q n.
    n = sum(hand.values())
    p = (2 * hand[(low, low)] + hand[(low, high)]) / (2 * n)
    assert top["expected"] == pytest.approx(2 * p * (1 - p) * n, abs=1e-4)
    assert top["ratio"] == pytest.approx(hand[(low, high)] / (2 * p * (1 - p) * n), abs=1e-4)
    assert top["ratio"] < 1  # the crowd agrees more than chance: confusion is below random
    assert all(ex["agreement"] <= top["examples"][-1]["agreement"] for ex in top["examples"])


def test_confused_pairs_rank_by_count_and_examples_by_agreement() -> None:
    rows = [
        # task 1: a, b, b -> pairs (a,b) (a,b) (b,b); task 2: a, c; task 3: a, b; task 4: c, c
        (1, "x", "y", "a", "b"),
        (1, "x", "z", "a", "b"),
        (1, "y", "z", "b", "b"),
        (2, "x", "y", "a", "c"),
        (3, "y", "z", "b", "a"),
        (4, "x", "z", "c", "c"),
    ]
    pairs = pd.DataFrame(rows, columns=["task_id", "annotator_a", "annotator_b", "value_a", "value_b"])
    tasks = pd.DataFrame({"task_id": [1, 2, 3, 4], "agreement": [1 / 3, 0.0, 0.0, 1.0]})
    result = confusion.control_confusion(
        pairs,
        tasks,
        ["a", "b", "c"],
        issues={3: {"given": "b"}},
        notes={1: [{"annotator": "y", "text": "unsure"}]},
    )
    assert result["labels"] == ["a", "b", "c"] and result["n_pairs"] == 6
    assert result["matrix"] == [[0, 3, 1], [3, 1, 0], [1, 0, 1]]
    first, second = result["pairs"]
    assert first["labels"] == ["a", "b"] and first["count"] == 3
    assert second["labels"] == ["a", "c"] and second["count"] == 1
    # shares: a 4/12, b 5/12, c 3/12 -> expected(a,b) = 6 * 2 * 4/12 * 5/12
    assert first["expected"] == pytest.approx(6 * 2 * (4 / 12) * (5 / 12), abs=1e-4)
    # Lowest agreement first; among equals the model's label issue first.
    assert [ex["task_id"] for ex in first["examples"]] == [3, 1]
    assert first["examples"][0]["label_issue"] == {"given": "b"}
    assert first["examples"][1]["answers"] == {"x": "a", "y": "b", "z": "b"}
    assert first["examples"][1]["notes"] == [{"annotator": "y", "text": "unsure"}]


def test_digest_lists_pairs_with_their_examples() -> None:
    pairs = pd.DataFrame(
        [(1, "x", "y", "a", "b"), (2, "x", "y", "a", "a")],
        columns=["task_id", "annotator_a", "annotator_b", "value_a", "value_b"],
    )
    tasks = pd.DataFrame({"task_id": [1, 2], "agreement": [0.0, 1.0]})
    found = {
        "label": confusion.control_confusion(pairs, tasks, notes={1: [{"annotator": "y", "text": "hm"}]})
    }
    text = guidelines_digest(
        found,
        title="P",
        project_url="http://ls/projects/3/",
        names={"x": "ann@x", "y": "bob@x"},
        texts={1: "the text"},
        version="v2",
    )
    assert text.splitlines()[0] == "### Edge cases: P (guidelines v2)"
    assert "#### label: a vs b\n\n1 of 2 annotator pairs (50.0 %)" in text
    assert (
        "- [task 1](http://ls/projects/3/data?task=1) · agreement 0.00 · answers: ann@x: a, bob@x: b\n"
        "  > the text\n  - note by bob@x: hm\n"
    ) in text
    assert (
        snippet({"n": 3, "text": "  a\n b  " + "c" * 300}, limit=10) == "a b ccccc…"
    )  # 10 characters with the ellipsis
