"""The npe2 manifest validates and points every command at a module that defines it."""

from __future__ import annotations

import importlib

import npe2
import pytest
from npe2 import PluginManifest

MANIFEST = PluginManifest.from_distribution("napari-unet")


def test_manifest_validates_and_names_the_contributions():
    assert MANIFEST.name == "napari-unet"
    assert {w.display_name for w in MANIFEST.contributions.widgets} == {"Train U-Net", "Segment with U-Net"}
    assert [s.display_name for s in MANIFEST.contributions.sample_data] == ["EM membranes (ISBI 2012)"]
    assert MANIFEST.contributions.readers and MANIFEST.contributions.writers


@pytest.mark.parametrize("command", MANIFEST.contributions.commands, ids=lambda c: c.id)
def test_every_command_resolves_to_a_module_attribute(command):
    module, _, attr = command.python_name.partition(":")
    assert not module.endswith("napari_unet"), "point at the defining module, not the package root"
    assert callable(getattr(importlib.import_module(module), attr))


def test_npe2_validate_cli():
    from npe2.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["validate", "napari-unet"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output.lower()


def test_plugin_is_discoverable_through_its_entry_point():
    pm = npe2.PluginManager()
    pm.discover()
    assert "napari-unet" in pm._manifests
    assert pm.get_manifest("napari-unet").display_name == "napari U-Net"
