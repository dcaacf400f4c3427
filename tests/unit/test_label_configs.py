"""Static checks of the labeling configs in ``label_configs/`` (no Label Studio server needed).

For every ``label_configs/<name>.xml`` this checks that the config parses and validates with the
SDK's ``LabelInterface``, that ``<name>.guidelines.md`` has the required sections, and that the
tasks in ``<name>.sample.json`` provide every data key the config's object tags read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk.label_interface.control_tags import ChoicesTag, ControlTag
from label_studio_sdk.label_interface.interface import LabelInterface
from label_studio_sdk.label_interface.object_tags import ObjectTag

CONFIG_DIR = Path(__file__).resolve().parents[2] / "label_configs"
XML_FILES = sorted(CONFIG_DIR.glob("*.xml"))
REQUIRED_HEADINGS = ("Task", "Categories", "Rules", "Examples", "Edge cases")
_H2 = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Expected:
    control_name: str
    control_tag: str
    object_name: str
    object_tag: str
    labels: tuple[str, ...]
    #: Further controls after the first: (name, tag)
    more: tuple[tuple[str, str], ...] = ()


EXPECTED: dict[str, Expected] = {
    "text_classification": Expected(
        "label", "Choices", "text", "Text", ("World", "Sports", "Business", "Sci/Tech")
    ),
    "sentiment": Expected("label", "Choices", "text", "Text", ("Positive", "Negative", "Neutral")),
    "multilabel_classification": Expected(
        "label",
        "Choices",
        "text",
        "Text",
        ("Toxic", "Severe Toxic", "Obscene", "Threat", "Insult", "Identity Hate"),
    ),
    "ner": Expected(
        "labels",
        "Labels",
        "text",
        "Text",
        ("Person", "Location", "Organization", "Product", "Creative-Work", "Group"),
    ),
    "image_classification": Expected(
        "label", "Choices", "image", "Image", ("Animal", "Vehicle", "Person", "Food", "Landscape", "Other")
    ),
    "object_detection": Expected(
        "bbox", "RectangleLabels", "image", "Image", ("Person", "Car", "Bicycle", "Traffic Sign", "Animal")
    ),
    "segmentation": Expected(
        "polygon",
        "PolygonLabels",
        "image",
        "Image",
        ("Road", "Building", "Vegetation", "Sky", "Vehicle", "Person"),
    ),
    "audio_transcription": Expected("transcription", "TextArea", "audio", "Audio", ()),
    "ocr": Expected(
        "bbox", "RectangleLabels", "image", "Image", ("Text", "Handwriting"), (("transcription", "TextArea"),)
    ),
}

# Label value in ner.xml -> WNUT-17 entity type it stands for (documented in ner.guidelines.md).
WNUT17_MAPPING: dict[str, str] = {
    "Person": "person",
    "Location": "location",
    "Organization": "corporation",
    "Product": "product",
    "Creative-Work": "creative-work",
    "Group": "group",
}


def _interface(xml_path: Path) -> LabelInterface:
    return LabelInterface(xml_path.read_text(encoding="utf-8"))


def _controls(li: LabelInterface) -> list[ControlTag]:
    return list(li.controls)


def _control(li: LabelInterface, name: str) -> ControlTag:
    # Own lookup instead of LabelInterface.get_control(), which is not type-annotated in the SDK.
    found = [c for c in _controls(li) if c.name == name]
    assert len(found) == 1, f"expected one control named {name!r}, found {len(found)}"
    return found[0]


def _labels(control: ControlTag) -> list[str]:
    return [str(label) for label in control.labels or []]


def _attrs(control: ControlTag) -> dict[str, str]:
    return {str(k): str(v) for k, v in (control.attr or {}).items()}


def _choices(li: LabelInterface, name: str) -> ChoicesTag:
    control = _control(li, name)
    assert isinstance(control, ChoicesTag), f"{name!r} is a {control.tag}, not Choices"
    return control


def _objects(li: LabelInterface) -> list[ObjectTag]:
    return list(li.objects)


def _guidelines_sections(md_path: Path) -> dict[str, str]:
    """Map each ``## Heading`` of a Markdown file to the text below it (up to the next ``##``)."""
    text = md_path.read_text(encoding="utf-8")
    matches = list(_H2.finditer(text))
    sections: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections[match.group(1)] = text[match.end() : end].strip()
    return sections


def _sample_tasks(xml_path: Path) -> list[dict[str, Any]]:
    raw: Any = json.loads(xml_path.with_name(f"{xml_path.stem}.sample.json").read_text(encoding="utf-8"))
    assert isinstance(raw, list), "sample file must hold a JSON list of tasks"
    tasks: list[dict[str, Any]] = []
    for task in raw:
        assert isinstance(task, dict) and isinstance(task.get("data"), dict), f"bad task: {task!r}"
        tasks.append(task)
    return tasks


def test_all_expected_configs_present() -> None:
    assert {p.stem for p in XML_FILES} == set(EXPECTED)


@pytest.mark.parametrize("xml_path", XML_FILES, ids=lambda p: p.stem)
def test_config_parses_and_validates(xml_path: Path) -> None:
    li = _interface(xml_path)
    # The constructor only parses; schema / toName / unique-name checks happen in validate().
    li.validate()  # type: ignore[no-untyped-call]  # SDK method lacks annotations
    controls, objects = _controls(li), _objects(li)
    assert controls, "config has no control tags"
    assert objects, "config has no object tags"
    object_names = {o.name for o in objects}
    for control in controls:
        assert control.to_name, f"{control.name} has no toName"
        assert set(control.to_name) <= object_names
    for obj in objects:
        # Convention: object tag `<kind>` reads data key `$<kind>`.
        assert obj.value == f"${obj.name}"
        assert obj.value_is_variable


@pytest.mark.parametrize("xml_path", XML_FILES, ids=lambda p: p.stem)
def test_config_has_expected_tags_and_labels(xml_path: Path) -> None:
    expected = EXPECTED[xml_path.stem]
    li = _interface(xml_path)
    controls, objects = _controls(li), _objects(li)
    assert [(c.name, c.tag) for c in controls] == [
        (expected.control_name, expected.control_tag),
        *expected.more,
    ]
    assert [(o.name, o.tag) for o in objects] == [(expected.object_name, expected.object_tag)]
    control = _control(li, expected.control_name)
    assert control.to_name == [expected.object_name]
    labels = _labels(control)
    assert tuple(labels) == expected.labels
    assert len(set(labels)) == len(labels), "duplicate label values"


def test_ner_labels_map_to_wnut17() -> None:
    li = _interface(CONFIG_DIR / "ner.xml")
    assert set(_labels(_control(li, "labels"))) == set(WNUT17_MAPPING)
    guidelines = (CONFIG_DIR / "ner.guidelines.md").read_text(encoding="utf-8")
    for label, wnut_type in WNUT17_MAPPING.items():
        assert re.search(rf"\*\*{re.escape(label)}\*\* \(WNUT-17 `{re.escape(wnut_type)}`\)", guidelines), (
            f"mapping {label} -> {wnut_type} not documented in ner.guidelines.md"
        )


def test_multilabel_allows_multiple_choices() -> None:
    control = _choices(_interface(CONFIG_DIR / "multilabel_classification.xml"), "label")
    assert _attrs(control).get("choice") == "multiple"
    assert control.is_multiple_choice


@pytest.mark.parametrize("stem", ["text_classification", "sentiment", "image_classification"])
def test_single_choice_configs_are_single_and_required(stem: str) -> None:
    control = _choices(_interface(CONFIG_DIR / f"{stem}.xml"), "label")
    assert _attrs(control).get("choice", "single") == "single"
    assert not control.is_multiple_choice
    assert _attrs(control).get("required") == "true"


@pytest.mark.parametrize("stem", ["audio_transcription", "ocr"])
def test_transcription_is_editable_textarea(stem: str) -> None:
    control = _control(_interface(CONFIG_DIR / f"{stem}.xml"), "transcription")
    assert control.tag == "TextArea"
    assert _attrs(control).get("editable") == "true"
    assert _attrs(control).get("perRegion", "false") == ("true" if stem == "ocr" else "false")


@pytest.mark.parametrize("xml_path", XML_FILES, ids=lambda p: p.stem)
def test_guidelines_have_required_sections(xml_path: Path) -> None:
    md_path = xml_path.with_name(f"{xml_path.stem}.guidelines.md")
    assert md_path.is_file(), f"missing {md_path.name}"
    first_line = md_path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert first_line.startswith("# "), "guidelines must start with a '# <Task title>' heading"
    sections = _guidelines_sections(md_path)
    for heading in REQUIRED_HEADINGS:
        assert heading in sections, f"{md_path.name} lacks '## {heading}'"
        assert sections[heading], f"{md_path.name}: '## {heading}' is empty"
    assert re.search(r"^1\. ", sections["Rules"], re.MULTILINE), "Rules must be a numbered list"


@pytest.mark.parametrize("xml_path", XML_FILES, ids=lambda p: p.stem)
def test_guidelines_list_every_label(xml_path: Path) -> None:
    labels = _labels(_control(_interface(xml_path), EXPECTED[xml_path.stem].control_name))
    categories = _guidelines_sections(xml_path.with_name(f"{xml_path.stem}.guidelines.md"))["Categories"]
    for label in labels:
        assert f"**{label}**" in categories, f"label {label!r} not defined under '## Categories'"


@pytest.mark.parametrize("xml_path", XML_FILES, ids=lambda p: p.stem)
def test_sample_tasks_cover_object_values(xml_path: Path) -> None:
    li = _interface(xml_path)
    tasks = _sample_tasks(xml_path)
    assert 2 <= len(tasks) <= 3
    needed = {o.value_name for o in _objects(li) if o.value_is_variable}
    assert needed
    for task in tasks:
        data: dict[str, Any] = task["data"]
        missing = needed - set(data)
        assert not missing, f"task {data!r} lacks data keys {sorted(missing)}"
        for key in needed:
            assert isinstance(data[key], str) and data[key].strip()
        for key in needed & {"image", "audio"}:
            # Placeholders only: no third-party media in the repository.
            assert data[key].startswith("https://example.org/"), data[key]


def test_readme_lists_every_config() -> None:
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    for xml_path in XML_FILES:
        assert f"`{xml_path.name}`" in readme
