"""Build `.dvc/plots/offline.html`: DVC's plots page with Vega, Vega-Lite and vega-embed inside.

`dvc plots show` writes `dvc_plots/index.html`, whose default page loads these three libraries
from a CDN: opened with no internet, it is blank. `.dvc/config` points DVC at this template
instead (`plots.html_template`); it has DVC's `{plot_divs}` and `{refresh_tag}` placeholders but
no `{scripts}` one (where DVC would put the CDN tags), and carries the libraries inline.

The libraries come from the npm registry at pinned versions; each tarball is checked against
its pinned sha512 integrity (as npm's lock files record it) and each file against its sha256.
The built template is committed, so a fresh clone renders plots offline with nothing to run;
this script is only needed to change a pin:

    python tools/build_plots_template.py            # download, verify, write the template
    python tools/build_plots_template.py --check    # verify the committed template (no network)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    file: str  # inside the tarball's package/ folder
    integrity: str  # the tarball's sha512, as the registry publishes it
    sha256: str  # of `file`
    license_file: str | None = "LICENSE"

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"


# The majors DVC's own page uses (vega 5, vega-lite 5, vega-embed 6), at their last releases.
PACKAGES = [
    Package(
        "vega",
        "5.33.1",
        "build/vega.min.js",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
        "463f3db6a40b20e9747b4ed38f37ed0add508838f9141b1cf8366784b07b30c8",
        license_file=None,  # the vega tarball ships no LICENSE file; package.json: BSD-3-Clause
    ),
    Package(
        "vega-lite",
        "5.23.0",
        "build/vega-lite.min.js",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
        "58c27358e26f2d319cf62f45bc17a4c8362f08645001df2ec8d341eee4097c7f",
    ),
    Package(
        "vega-embed",
        "6.29.0",
        "build/vega-embed.min.js",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
        "12d02acfbe3ec59ef9a37dd4822a2e04e2961b5bbb671bbe661d2221715b99da",
    ),
]
SCRIPT = re.compile(r'<script data-package="([^"]+)" data-sha256="([0-9a-f]{64})">(.*?)</script>', re.DOTALL)


def download(package: Package) -> bytes:
    with urllib.request.urlopen(package.tarball, timeout=60) as answer:
        data = answer.read()
    algorithm, expected = package.integrity.split("-", 1)
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        sys.exit(f"{package.tarball}: {algorithm} {actual} is not the pinned {expected}: refusing it.")
    return data


def extract(tarball: bytes, member: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        handle = archive.extractfile(f"package/{member}")
        if handle is None:
            sys.exit(f"package/{member} is not a file in the tarball")
        return handle.read()


def script_tag(package: Package, code: str) -> str:
    for bad in ("</script", "<!--", "{plot_divs}", "{refresh_tag}", "{scripts}"):
        if bad in code:  # would end the script early, or be replaced by DVC
            sys.exit(f"{package.name}'s {package.file} holds {bad!r}: it cannot be inlined as it is.")
    attributes = f'data-package="{package.name}@{package.version}" data-sha256="{package.sha256}"'
    return f"<script {attributes}>{code}</script>"


def build() -> str:
    scripts, notices = [], []
    for package in PACKAGES:
        tarball = download(package)
        code = extract(tarball, package.file)
        if hashlib.sha256(code).hexdigest() != package.sha256:
            sys.exit(f"{package.name}'s {package.file} does not match its pinned sha256.")
        scripts.append(script_tag(package, code.decode("utf-8")))
        if package.license_file:
            text = extract(tarball, package.license_file).decode("utf-8").replace("-->", "- ->")
        else:
            text = "BSD-3-Clause (package.json); copyright the University of Washington Interactive Data Lab."
        notices.append(f"{package.name} {package.version} ({package.tarball}):\n{text.strip()}")
    legal = "\n\n".join(notices)
    return f"""<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!--
    DVC's plots page, readable offline: Vega, Vega-Lite and vega-embed are inlined from their npm
    packages by tools/build_plots_template.py (do not edit by hand). Their licenses:

{legal}
    -->
    {chr(10).join("    " + s for s in scripts).lstrip()}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def check(path: Path = TEMPLATE) -> list[str]:
    """What is wrong with the template at `path` (nothing: an empty list), with no network."""
    page = path.read_text(encoding="utf-8")
    problems = [f"no {p} placeholder" for p in ("{plot_divs}", "{refresh_tag}") if p not in page]
    if "{scripts}" in page or "cdn.jsdelivr" in page:
        problems.append("DVC's CDN scripts would be inserted")
    found = {package: (sha, code) for package, sha, code in SCRIPT.findall(page)}
    for package in PACKAGES:
        key = f"{package.name}@{package.version}"
        if key not in found:
            problems.append(f"{key} is not inlined")
            continue
        sha, code = found[key]
        if sha != package.sha256 or hashlib.sha256(code.encode("utf-8")).hexdigest() != package.sha256:
            problems.append(f"{key} differs from the pinned file")
    if len(found) != len(PACKAGES):
        problems.append(f"{len(found)} inlined scripts, expected {len(PACKAGES)}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="verify the committed template only")
    parser.add_argument("--output", type=Path, default=TEMPLATE)
    args = parser.parse_args()
    if not args.check:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(build(), encoding="utf-8")
    problems = check(args.output)
    if problems:
        sys.exit(f"{args.output}: " + "; ".join(problems))
    pins = ", ".join(f"{p.name} {p.version}" for p in PACKAGES)
    print(f"{args.output}: {pins} inlined")


if __name__ == "__main__":
    main()
