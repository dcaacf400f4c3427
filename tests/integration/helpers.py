"""Small helpers the integration tests share."""

from __future__ import annotations

import itertools

from ls_companion.client import LabelStudioClient
from ls_companion.records import Project

CHOICES_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single">
    <Choice value="ham"/>
    <Choice value="spam"/>
  </Choices>
</View>"""

_counter = itertools.count(1)


def new_project(client: LabelStudioClient, prefix: str, label_config: str = CHOICES_CONFIG) -> Project:
    """A fresh project with a unique title."""
    return client.create_project(title=f"{prefix} {next(_counter)}", label_config=label_config)


def choice(value: str, from_name: str = "label", to_name: str = "text") -> list[dict[str, object]]:
    """An annotation/prediction result selecting one choice."""
    return [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [value]}}]
