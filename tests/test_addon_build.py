"""build_addon.py: wheel platforms, manifest staging, bridge vendoring, split builds through
Blender's own extension tooling (offline: stand-in wheel files named as the manifest's)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
build_addon = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_addon)


def manifest_wheels() -> list[str]:
    manifest, _ = build_addon.read_manifest()
    return [Path(entry).name for entry in manifest["wheels"]]


def stand_in_wheels(folder: Path) -> Path:
    """Empty zip files named like the manifest's wheels (the build only copies them)."""
    folder.mkdir()
    for name in manifest_wheels():
        with zipfile.ZipFile(folder / name, "w") as archive:
            archive.writestr("placeholder.txt", "not a real wheel")
    return folder


def test_manifest_declares_what_the_brief_needs():
    manifest, _ = build_addon.read_manifest()
    assert manifest["id"] == "text_to_motion"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert {"network", "files"} <= set(manifest["permissions"])
    platforms = {p for name in manifest_wheels() for p in build_addon.wheel_platforms(name)}
    assert platforms == set(manifest["platforms"]) == {"linux-x64", "windows-x64", "macos-arm64", "macos-x64"}
    assert all(name.startswith("pyzmq-") for name in manifest_wheels())


def test_every_platform_has_a_wheel_for_python_3_11_and_one_for_3_12_and_later():
    """cp311 for Blender 4.2 to 5.0, cp312-abi3 (stable ABI) for the CPython 3.13 releases."""
    manifest, _ = build_addon.read_manifest()
    for platform in manifest["platforms"]:
        tags = sorted(name.split("-")[2:4] for name in manifest_wheels()
                      if platform in build_addon.wheel_platforms(name))
        assert tags == [["cp311", "cp311"], ["cp312", "abi3"]], (platform, tags)


@pytest.mark.parametrize("python, kept", [((3, 11), "cp311-cp311"), ((3, 12), "cp312-abi3"),
                                          ((3, 13), "cp312-abi3")])
def test_blender_installs_the_wheel_that_fits_its_python(monkeypatch, python, kept):
    """Blender's own install-time filter (bl_pkg) keeps exactly one pyzmq wheel per Python."""
    pytest.importorskip("bpy")
    from bl_pkg import bl_extension_ops

    linux = [f"./wheels/{name}" for name in manifest_wheels() if "manylinux" in name and "x86_64" in name]
    monkeypatch.setattr(sys, "version_info", (*python, 0, "final", 0))
    monkeypatch.setattr("sysconfig.get_platform", lambda: "linux-x86_64")
    chosen = bl_extension_ops._extensions_wheel_filter_for_this_system(linux)
    monkeypatch.undo()
    assert len(chosen) == 1 and kept in chosen[0], chosen


def test_wheel_platforms():
    assert build_addon.wheel_platforms("pyzmq-27.1.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl") \
        == ["linux-x64"]
    assert build_addon.wheel_platforms("pyzmq-27.1.0-cp311-cp311-win_amd64.whl") == ["windows-x64"]
    assert build_addon.wheel_platforms("pyzmq-27.1.0-cp311-cp311-macosx_10_15_universal2.whl") \
        == ["macos-arm64", "macos-x64"]
    with pytest.raises(build_addon.BuildError, match="cannot tell the platform"):
        build_addon.wheel_platforms("pyzmq-27.1.0-cp311-cp311-haiku_r1.whl")


def test_staged_manifest_keeps_only_the_chosen_platforms_and_wheels():
    _, text = build_addon.read_manifest()
    linux = [name for name in manifest_wheels() if "manylinux" in name]
    staged = tomllib.loads(build_addon.staged_manifest(text, ["linux-x64"], linux))
    assert staged["platforms"] == ["linux-x64"]
    assert staged["wheels"] == [f"./wheels/{name}" for name in linux] and len(linux) == 2
    bare = tomllib.loads(build_addon.staged_manifest(text, ["linux-x64"], []))
    assert "wheels" not in bare and bare["permissions"]["network"]


def test_vendored_bridge_imports_itself(tmp_path, monkeypatch):
    package = tmp_path / "vendored_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    build_addon.vendor_bridge(package / "bridge")
    assert (package / "bridge" / "client.py").read_text() == (ROOT / "bridge" / "client.py").read_text()
    monkeypatch.syspath_prepend(str(tmp_path))
    client = importlib.import_module("vendored_pkg.bridge.client")
    assert client.Reply.__module__ == "vendored_pkg.bridge.codec"  # not the top-level bridge
    for name in [m for m in sys.modules if m.startswith("vendored_pkg")]:
        del sys.modules[name]


def test_absolute_bridge_imports_are_refused(tmp_path, monkeypatch):
    source = tmp_path / "bridge"
    source.mkdir()
    (source / "client.py").write_text("from bridge.codec import Reply\n")
    monkeypatch.setattr(build_addon, "BRIDGE", source)
    with pytest.raises(build_addon.BuildError, match="client.py: imports 'bridge' absolutely"):
        build_addon.vendor_bridge(tmp_path / "out")


def test_missing_wheels_without_fetch_are_named(tmp_path):
    with pytest.raises(build_addon.BuildError, match="missing wheels .*win_amd64"):
        build_addon.build(["windows-x64"], fetch=False, out_dir=tmp_path / "dist",
                          build_dir=tmp_path / "build", wheel_dir=tmp_path / "empty")


def test_split_build_writes_one_zip_per_platform_with_its_wheel(tmp_path):
    pytest.importorskip("bpy")
    wheels = stand_in_wheels(tmp_path / "wheels")
    zips = build_addon.build(None, fetch=False, out_dir=tmp_path / "dist", build_dir=tmp_path / "build",
                             wheel_dir=wheels)
    names = sorted(path.name for path in zips)
    assert names == ["text_to_motion-0.1.0-linux_x64.zip", "text_to_motion-0.1.0-macos_arm64.zip",
                     "text_to_motion-0.1.0-macos_x64.zip", "text_to_motion-0.1.0-windows_x64.zip"]
    with zipfile.ZipFile(tmp_path / "dist" / "text_to_motion-0.1.0-windows_x64.zip") as archive:
        files = archive.namelist()
        assert [f for f in files if f.startswith("wheels/")] == ["wheels/pyzmq-27.1.0-cp311-cp311-win_amd64.whl",
                                                                 "wheels/pyzmq-27.1.0-cp312-abi3-win_amd64.whl"]
        assert {"__init__.py", "ops.py", "retarget.py", "bridge/client.py", "blender_manifest.toml"} <= set(files)
        assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
        assert "from .codec import" in archive.read("bridge/client.py").decode()


def test_invalid_manifest_is_refused_by_blenders_validator(tmp_path):
    pytest.importorskip("bpy")
    package = tmp_path / "bad"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "blender_manifest.toml").write_text(
        'schema_version = "1.0.0"\nid = "bad"\nversion = "1"\nname = "Bad"\ntagline = "Ends with a dot."\n'
        'maintainer = "x"\ntype = "add-on"\nblender_version_min = "4.2.0"\nlicense = ["SPDX:GPL-3.0-or-later"]\n')
    with pytest.raises(build_addon.BuildError, match="validate"):
        build_addon.blender_extension_command(["validate", str(package)])


def test_the_package_installs_on_python_3_12_and_3_13_and_bpy_only_on_3_11():
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    allowed = SpecifierSet(project["requires-python"])
    assert all(version in allowed for version in ("3.11.7", "3.12.1", "3.13.0"))
    for minor, bpy_expected in (("3.11", True), ("3.12", False), ("3.13", False)):
        environment = {"python_version": minor, "python_full_version": minor + ".0"}
        blender = [Requirement(entry) for entry in project["optional-dependencies"]["blender"]]
        assert any(r.name == "bpy" and (r.marker is None or r.marker.evaluate(environment)) for r in blender) \
            == bpy_expected
        numpy = [Requirement(entry) for entry in project["dependencies"] if entry.startswith("numpy")]
        active = [r for r in numpy if r.marker is None or r.marker.evaluate(environment)]
        assert len(active) == 1, (minor, active)
        # numpy 1.26 (what Blender ships) beside bpy on 3.11; it has no cp313 wheel, so 2.x beyond
        assert ("2.1" in active[0].specifier) == (minor != "3.11"), (minor, active)
