"""schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.contract.hooks``): what JSON Schema cannot say.

A labeling config is XML; the OpenAPI document marks it ``format: label-config``, and valid ones are
drawn from the project's own configs (``label_configs/*.xml``), so positive cases reach the models.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from ls_companion.localserver import REPO_ROOT

CONFIGS = sorted(path.read_text() for path in (REPO_ROOT / "label_configs").glob("*.xml"))

schemathesis.openapi.format("label-config", st.sampled_from(CONFIGS))
