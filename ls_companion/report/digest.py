"""The guidelines-review digest: the label pairs annotators confuse, as Markdown for "Edge cases".

Pure: it formats the engine's ``confusion`` section (``quality.engine.label_confusion``); the command
(``ls-companion guidelines-review``) reads the project and the example tasks' texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Confused pairs per control in the digest (the JSON keeps more), and characters of a task's text.
DIGEST_PAIRS = 3
SNIPPET = 200


def snippet(data: Mapping[str, Any], limit: int = SNIPPET) -> str:
    """The first text value of a task's data, on one line, cut at ``limit`` characters."""
    text = next((str(v) for v in data.values() if isinstance(v, str) and v.strip()), "")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _example(example: Mapping[str, Any], url: str, names: Mapping[str, str], text: str) -> list[str]:
    answers = ", ".join(f"{names.get(a, a)}: {label}" for a, label in example["answers"].items())
    agreement = example.get("agreement")
    parts = [f"[task {example['task_id']}]({url}data?task={example['task_id']})"]
    parts.append(f"agreement {agreement:.2f}" if agreement is not None else "agreement –")
    parts.append(f"answers: {answers}")
    issue = example.get("label_issue")
    if isinstance(issue, Mapping) and "score" in issue:
        parts.append(f"model: likely mislabelled ({issue['score']:.2f}), suggests {issue.get('suggested')}")
    elif issue is not None:
        parts.append(f"model: label issue ({issue})")
    lines = ["- " + " · ".join(parts)]
    lines += [f"  > {text}"] if text else []
    lines += [
        f"  - note by {names.get(n['annotator'], n['annotator'])}: {n['text']}"
        for n in example.get("notes") or ()
    ]
    return lines


def guidelines_digest(
    confusion: Mapping[str, Mapping[str, Any]],
    *,
    title: str,
    project_url: str,
    names: Mapping[str, str] | None = None,
    texts: Mapping[Any, str] | None = None,
    version: str | None = None,
    pairs: int = DIGEST_PAIRS,
) -> str:
    """Markdown to paste under "Edge cases": per control, the most confused label pairs and examples."""
    names, texts = names or {}, texts or {}
    since = f" (guidelines {version})" if version else ""
    lines = [
        f"### Edge cases: {title}{since}",
        "",
        "The label pairs two annotators of the same task chose most often, with the tasks where they did",
        "(lowest agreement first). For each pair, write the rule that tells the two labels apart.",
    ]
    for control, block in confusion.items():
        if not block["pairs"]:
            continue
        for pair in block["pairs"][:pairs]:
            a, b = pair["labels"]
            lines += [
                "",
                f"#### {control}: {a} vs {b}",
                "",
                f"{pair['count']} of {block['n_pairs']} annotator pairs ({100 * pair['share']:.1f} %), "
                f"{pair['ratio']:.1f} × what labels chosen at random would give.",
                "",
            ]
            for example in pair["examples"]:
                lines += _example(example, project_url, names, texts.get(example["task_id"], ""))
    if len(lines) == 4:
        lines += ["", "No two annotators disagreed on a single-choice control yet."]
    return "\n".join(lines) + "\n"
