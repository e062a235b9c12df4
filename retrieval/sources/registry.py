"""Source type -> its connector module. Each module has `connector(spec, work_dir) -> Connector`, which
checks the spec's settings (raising SourceConfigError) and makes no request until `changes()`.

Imported on use, so a source type's client library is loaded only where such a source is configured.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from retrieval.sources.base import Connector
from retrieval.sources.spec import SourceSpec

MODULES = {
    "git": "retrieval.sources.git",
    "website": "retrieval.sources.website",
    "confluence": "retrieval.sources.confluence",
    "notion": "retrieval.sources.notion",
    "gdrive": "retrieval.sources.gdrive",
}


def connector_for(spec: SourceSpec, work_dir: Path) -> Connector:
    """The connector of `spec`'s type. `work_dir`: a folder of this source's own (a git clone lives
    there), kept between syncs; it may be empty (a new replica) and the connector copes."""
    if spec.kind not in MODULES:
        raise spec.error(f"unknown type {spec.kind!r}: use one of {', '.join(sorted(MODULES))}")
    module = importlib.import_module(MODULES[spec.kind])
    connector: Connector = module.connector(spec, work_dir)
    return connector
