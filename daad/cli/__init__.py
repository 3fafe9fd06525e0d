"""The `daad` command: a thin layer over the Python API.

Each module in this package registers its commands on the group; heavy libraries
(datasets, torch, fiftyone) are imported inside the commands that need them, so
`daad status` starts fast and works with only the base install.
"""

from __future__ import annotations

import importlib
import os

import click

from daad.cli.errors import DaadGroup
from daad.cli.params import UserPath

COMMAND_MODULES = [
    "daad.cli.collect",
    "daad.cli.collect_dataset",
    "daad.cli.collect_search",
    "daad.cli.collect_paper",
    "daad.cli.masks",
    "daad.cli.catalog_view",
    "daad.cli.review",
    "daad.cli.publish",
    "daad.cli.cdm",
    "daad.cli.synthesize",
    "daad.cli.dedupe",
    "daad.cli.demo",
    "daad.cli.annotate",
    "daad.cli.licence",
    "daad.cli.evaluate",
]


@click.group(cls=DaadGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=UserPath(file_okay=False), envvar="DAAD_HOME", help="DAAD_HOME: catalog and media store (default ~/.daad).")
@click.version_option(package_name="daad")
def main(home: str | None) -> None:
    """daad: collect real anomalies, curate them into DAAD, publish it, inject it.

    \b
    Examples:
      daad collect photos ~/defect-photos --class crack --license CC-BY-4.0 --attribution "ACME QA"
      daad status --plot status.png
      daad ls --class crack --json
      daad demo --out daad-demo
    """
    if home:
        os.environ["DAAD_HOME"] = home


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)
