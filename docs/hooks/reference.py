"""MkDocs hook: the reference pages, rendered from the code at each build.

``reference/events.md`` from ``docs/asyncapi.yaml``, ``reference/http.md`` from each
service's OpenAPI and the console's routes (``aiguillage/reference.py``). They are not
kept in the repository: the site says what the code of the build says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from aiguillage.reference import events_page, http_page


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    document = yaml.safe_load((Path(config.docs_dir) / "asyncapi.yaml").read_text())
    for path, content in (
        ("reference/events.md", events_page(document)),
        ("reference/http.md", http_page()),
    ):
        files.append(File.generated(config, path, content=content))
    return files
