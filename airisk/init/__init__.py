"""`airisk init`: read a product's Python source with `ast`, find its AI calls, and propose an airisk.yaml.

``scanner`` follows calls up to features, ``sites`` recognises one call site (``index`` and ``resolve``
follow values and calls, ``families`` says what each SDK looks like), ``findings`` holds what was found,
``writer`` turns it into the config and the report, ``command`` is the click command."""

from airisk.init.findings import CallSite, Feature, Link, Scan, Setting
from airisk.init.scanner import scan
from airisk.init.writer import Proposal, propose, render_report, render_yaml

__all__ = ["CallSite", "Feature", "Link", "Proposal", "Scan", "Setting", "propose", "render_report", "render_yaml",
           "scan"]
