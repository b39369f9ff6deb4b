#!/usr/bin/env python3
"""Build the installable Blender extension zip(s) of blender_addon/.

    python build_addon.py                          # all platforms: dist/text_to_motion-V-<platform>.zip
    python build_addon.py --platform linux-x64     # one platform, quick local build
    python build_addon.py --no-fetch               # only wheels already in blender_addon/wheels/
    python build_addon.py --no-wheels              # no pyzmq inside (for a Blender that has it)

Steps: read the wheel list from blender_addon/blender_manifest.toml (per platform, pyzmq's
cp311 wheel for Blender 4.2 to 5.0 and its cp312-abi3 wheel for the CPython 3.13 releases
5.1 / 5.2; Blender installs the one that fits its Python); fetch missing
wheels with `pip download` into blender_addon/wheels/ (git-ignored cache); stage the
package into build/text_to_motion/ with bridge/ vendored inside it (bridge imports its
own modules relatively, so the installed copy imports itself); then validate
and build it with Blender's own extension tooling (the code behind `blender --command
extension validate|build`, from the bpy module's bundled bl_pkg add-on), one zip per
platform (--split-platforms) or one zip for all (--single-zip).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
BRIDGE = ROOT / "bridge"
WHEEL_CACHE = ADDON / "wheels"
MANIFEST = ADDON / "blender_manifest.toml"
# Files of blender_addon/ that are not part of the extension.
SKIP_NAMES = {"__pycache__", "wheels", "blender_manifest.toml"}
# pyzmq wheel platform tag fragment -> Blender platforms it serves.
WHEEL_PLATFORMS = [
    ("manylinux", "x86_64", ["linux-x64"]),
    ("manylinux", "aarch64", ["linux-arm64"]),
    ("win_amd64", "", ["windows-x64"]),
    ("win_arm64", "", ["windows-arm64"]),
    ("macosx", "universal2", ["macos-arm64", "macos-x64"]),
    ("macosx", "arm64", ["macos-arm64"]),
    ("macosx", "x86_64", ["macos-x64"]),
]


class BuildError(Exception):
    """A build that cannot go on; the message says why and what to do."""


def wheel_platforms(filename: str) -> list[str]:
    """Blender platforms a wheel file serves, from its platform tag."""
    platform_tag = Path(filename).stem.split("-")[-1]
    for family, arch, platforms in WHEEL_PLATFORMS:
        if family in platform_tag and arch in platform_tag:
            return platforms
    raise BuildError(f"cannot tell the platform of wheel {filename!r}")


def read_manifest() -> tuple[dict, str]:
    text = MANIFEST.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as error:
        raise BuildError(f"{MANIFEST}: {error}") from None


def fetch_wheel(filename: str, wheel_dir: Path) -> None:
    """pip download one wheel named in the manifest into the cache."""
    name, version, python_tag, abi_tag, platform_tags = Path(filename).stem.split("-")
    command = [sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps",
               "--only-binary=:all:", "--python-version", f"{python_tag[2]}.{python_tag[3:]}",
               "--implementation", "cp", "--abi", abi_tag, "--quiet"]
    for tag in platform_tags.split("."):
        command += ["--platform", tag]
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(command + ["-d", folder], capture_output=True, text=True)
        fetched = Path(folder) / filename
        if done.returncode != 0 or not fetched.exists():
            raise BuildError(f"could not fetch {filename}: {done.stderr.strip() or 'pip found another file'}\n"
                             f"command: {' '.join(command)}")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(fetched), wheel_dir / filename)
    print(f"fetched {filename}", file=sys.stderr)


def select_wheels(manifest: dict, platforms: list[str], fetch: bool, wheel_dir: Path) -> list[str]:
    """The manifest's wheel files serving `platforms`, fetched into `wheel_dir` if needed."""
    chosen = [Path(entry).name for entry in manifest.get("wheels", [])
              if set(wheel_platforms(entry)) & set(platforms)]
    missing = [name for name in chosen if not (wheel_dir / name).exists()]
    if missing and not fetch:
        raise BuildError(f"missing wheels in {wheel_dir}: {', '.join(missing)} "
                         "(run without --no-fetch, or use --no-wheels)")
    for name in missing:
        fetch_wheel(name, wheel_dir)
    return chosen


def staged_manifest(text: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest with its platforms and wheels lists replaced."""
    listing = "".join(f'  "./wheels/{name}",\n' for name in wheels)
    text = re.sub(r"(?ms)^wheels = \[.*?^\]\n", f"wheels = [\n{listing}]\n" if wheels else "", text)
    return re.sub(r"(?m)^platforms = \[.*\]$", "platforms = " + json.dumps(platforms), text)


def vendor_bridge(target: Path) -> None:
    """Copy bridge/*.py into the package. Its modules import each other relatively, so the
    copy imports itself; an absolute `bridge` import would silently reach for a top-level
    package that an installed extension does not have, so it is refused."""
    target.mkdir()
    for source in sorted(BRIDGE.glob("*.py")):
        code = source.read_text(encoding="utf-8")
        if re.search(r"(?m)^\s*(from|import) bridge\b", code):
            raise BuildError(f"{source}: imports 'bridge' absolutely; use relative imports so it can be vendored")
        (target / source.name).write_text(code, encoding="utf-8")


def stage(manifest: dict, text: str, platforms: list[str], wheels: list[str], build_dir: Path,
          wheel_dir: Path) -> Path:
    package = build_dir / manifest["id"]
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    for item in sorted(ADDON.iterdir()):
        if item.name in SKIP_NAMES or item.suffix == ".pyc":
            continue
        if item.is_dir():
            shutil.copytree(item, package / item.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, package / item.name)
    vendor_bridge(package / "bridge")
    if wheels:
        (package / "wheels").mkdir()
        for name in wheels:
            shutil.copy2(wheel_dir / name, package / "wheels" / name)
    (package / "blender_manifest.toml").write_text(staged_manifest(text, platforms, wheels), encoding="utf-8")
    return package


def blender_extension_command(args: list[str]) -> None:
    """Run `blender --command extension ARGS` in this process through the bpy module."""
    try:
        import bpy  # noqa: F401  (puts Blender's bundled scripts, bl_pkg among them, on sys.path)
        from bl_pkg import bl_extension_cli
    except ImportError as error:
        raise BuildError(f"the bpy module is needed to validate and build ({error}); "
                         "install it with: pip install bpy==5.0.1") from None
    status = bl_extension_cli.cli_extension_handler(args)
    if status != 0:
        raise BuildError(f"blender --command extension {' '.join(args)} failed (status {status})")


def build(platforms: list[str] | None = None, fetch: bool = True, with_wheels: bool = True,
          split: bool = True, out_dir: Path = ROOT / "dist", build_dir: Path = ROOT / "build",
          wheel_dir: Path = WHEEL_CACHE) -> list[Path]:
    """Stage, validate and build; returns the zip files written."""
    manifest, text = read_manifest()
    known = manifest.get("platforms", [])
    platforms = platforms or known
    unknown = sorted(set(platforms) - set(known))
    if unknown:
        raise BuildError(f"unknown platform(s) {unknown}; the manifest lists {known}")
    wheels = select_wheels(manifest, platforms, fetch, wheel_dir) if with_wheels else []
    package = stage(manifest, text, platforms, wheels, build_dir, wheel_dir)
    blender_extension_command(["validate", str(package)])
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{manifest['id']}-{manifest['version']}"
    for old in out_dir.glob(f"{stem}*.zip"):
        old.unlink()
    command = ["build", "--source-dir", str(package), "--output-dir", str(out_dir)]
    if split:
        command.append("--split-platforms")
    blender_extension_command(command)
    written = sorted(path for path in out_dir.glob(f"{stem}*.zip"))
    if not written:
        raise BuildError(f"Blender's build wrote no zip into {out_dir}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", action="append", dest="platforms", metavar="PLATFORM",
                        help="build for this platform only (repeatable): linux-x64, windows-x64, "
                             "macos-arm64, macos-x64")
    parser.add_argument("--no-fetch", action="store_true", help="do not download wheels; use the cache only")
    parser.add_argument("--no-wheels", action="store_true", help="bundle no pyzmq wheel")
    parser.add_argument("--single-zip", action="store_true", help="one zip for all platforms instead of one per platform")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build",
                        help="staging folder (default: build/)")
    parser.add_argument("--wheel-dir", type=Path, default=WHEEL_CACHE,
                        help="wheel cache (default: blender_addon/wheels/)")
    args = parser.parse_args(argv)
    try:
        zips = build(args.platforms, fetch=not args.no_fetch, with_wheels=not args.no_wheels,
                     split=not args.single_zip, out_dir=args.out, build_dir=args.build_dir,
                     wheel_dir=args.wheel_dir)
    except BuildError as error:
        print(f"build_addon: error: {error}", file=sys.stderr)
        return 1
    for path in zips:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
