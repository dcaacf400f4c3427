"""Image models of the ML backend (printed figures, not a test).

1. OCR (the ``ocr`` plugin, rapidocr-onnxruntime's PP-OCR models) on generated document images: lines of
   words and numbers rendered with the DejaVu fonts (Sans, Serif, Mono) at several sizes, some rotated
   by up to 2 degrees, some with Gaussian noise. Per image, every true line is matched to the recognised
   line closest in characters. Reported: line recall (true lines whose best match has a CER below 0.5),
   character error rate over all true lines (a missed line counts all its characters), once as printed
   and once ignoring spaces (PP-OCR's English recogniser often drops them), and images/s on this machine.
2. Image classification learning curve on scikit-learn's bundled handwritten digits (1,797 real 8x8
   scans, written out as PNG, 32x32, and decoded as the backend decodes task media): the backend's
   classifier (HOG + colour histograms, model selection and calibration of ``ls_companion.modelselect``)
   against a plain logistic regression on the same decoded pixels, both trained on the same 50 / 100 /
   300 / 1,000 labelled scans (stratified, seeded) and measured on the same 797 held-out scans, in the
   same run.

Run: ``.venv/bin/python -m bench.bench_images [--images N]`` (default 24 documents; about 3 minutes on 2
shared cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rapidfuzz.distance import Levenshtein
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_backend.media import decode_image
from ml_backend.models.image_classifier import ImageClassifier
from ml_backend.models.ocr import OcrEngine
from tests.harness.images import FONTS, digit_image, digit_labels, png, render_document

WORDS = [
    "invoice",
    "total",
    "due",
    "date",
    "order",
    "customer",
    "amount",
    "paid",
    "balance",
    "account",
    "number",
    "street",
    "city",
    "phone",
    "delivery",
    "parcel",
    "signed",
    "received",
    "shipment",
    "payment",
    "reference",
    "tax",
    "net",
    "gross",
    "item",
    "quantity",
    "price",
    "Monday",
    "Berlin",
    "Lisbon",
    "Oslo",
    "March",
    "report",
    "summary",
    "page",
    "notes",
]
SIZES = (16, 24, 36)
SIZES_LABELS = (50, 100, 300, 1000)


def document(rng: np.random.Generator, k: int) -> tuple[list[str], dict[str, float | str | int]]:
    lines = []
    for _ in range(int(rng.integers(2, 6))):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 5))))
        if rng.random() < 0.5:
            words.append(f"{rng.integers(1, 9999)}.{rng.integers(0, 99):02d}")
        lines.append(" ".join(str(w) for w in words))
    options: dict[str, float | str | int] = {
        "size": SIZES[k % len(SIZES)],
        "font": FONTS[(k // len(SIZES)) % len(FONTS)],
        "angle": float(rng.uniform(-2.0, 2.0)) if k % 2 else 0.0,
        "noise": 12.0 if k % 4 >= 2 else 0.0,
        "seed": k,
    }
    return lines, options


def ocr(n_images: int) -> None:
    rng = np.random.default_rng(0)
    docs = [document(rng, k) for k in range(n_images)]
    images = [decode_image(png(render_document(lines, **options))) for lines, options in docs]  # type: ignore[arg-type]
    started = time.perf_counter()
    engine = OcrEngine()
    engine.lines(images[0])  # first call pays the ONNX sessions' set-up
    load = time.perf_counter() - started
    started = time.perf_counter()
    found = [[text for _, text, _ in engine.lines(image)] for image in images]
    seconds = time.perf_counter() - started
    truth_lines = matched = 0
    errors = {"as printed": 0, "ignoring spaces": 0}
    chars = {"as printed": 0, "ignoring spaces": 0}
    by_size: dict[int, list[int]] = {s: [0, 0] for s in SIZES}
    for (lines, options), recognised in zip(docs, found, strict=True):
        for line in lines:
            truth_lines += 1
            for mode, norm in (("as printed", str), ("ignoring spaces", lambda t: "".join(t.split()))):
                target = norm(line)
                best = min((Levenshtein.distance(target, norm(r)) for r in recognised), default=len(target))
                errors[mode] += min(best, len(target))
                chars[mode] += len(target)
            best_cer = min((Levenshtein.normalized_distance(line, r) for r in recognised), default=1.0)
            hit = best_cer < 0.5
            matched += hit
            by_size[int(options["size"])][0] += hit
            by_size[int(options["size"])][1] += 1
    print(
        f"OCR, {n_images} generated documents, {truth_lines} lines (DejaVu Sans/Serif/Mono, sizes {SIZES} px,"
    )
    print("  half rotated by up to 2 degrees, half with noise sd 12):")
    print(
        f"  line recall: {matched / truth_lines:.3f}  (by size: "
        + ", ".join(f"{s}px {h / n:.2f}" for s, (h, n) in by_size.items() if n)
        + ")"
    )
    for mode in errors:
        print(f"  character error rate, {mode}: {errors[mode] / chars[mode]:.3f}")
    print(
        f"  {n_images / seconds:.2f} images/s on this machine ({seconds:.1f} s; model load + first call {load:.1f} s)"
    )


def learning_curve() -> None:
    labels = digit_labels()
    images = [decode_image(png(digit_image(i))) for i in range(len(labels))]  # as the backend decodes them
    pool, test = train_test_split(np.arange(len(labels)), test_size=797, random_state=0, stratify=labels)
    pixels = np.array([image[..., 0].reshape(-1) for image in images], dtype=np.float64) / 255.0
    print(
        f"\nImage classification, sklearn digits as 32x32 PNG, {len(test)} held-out scans (accuracy / macro F1):"
    )
    print(
        f"  {'labels':>6}  {'backend (HOG+colour, selected, calibrated)':>44}  {'pixel logistic regression':>26}  ratio"
    )
    for size in SIZES_LABELS:
        train = (
            pool
            if size >= len(pool)
            else train_test_split(pool, train_size=size, random_state=0, stratify=labels[pool])[0]
        )
        names = [str(v) for v in labels[train]]
        truth = [str(v) for v in labels[test]]
        started = time.perf_counter()
        ours = ImageClassifier("single").fit([images[i] for i in train], names)
        predicted = [ours.classes_[j] for j in ours.predict_proba([images[i] for i in test]).argmax(axis=1)]
        ours_s = time.perf_counter() - started
        base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(pixels[train], names)
        baseline = list(base.predict(pixels[test]))
        a, b = accuracy_score(truth, predicted), accuracy_score(truth, baseline)
        fa = f1_score(truth, predicted, average="macro")
        fb = f1_score(truth, baseline, average="macro")
        chosen = ours.selection_.name if ours.selection_ is not None else "-"
        print(
            f"  {size:>6}  {a:>14.3f} / {fa:.3f}  ({chosen}, {ours_s:5.1f} s)  {b:>14.3f} / {fb:.3f}  {a / b:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="generated documents for the OCR part")
    args = parser.parse_args()
    ocr(max(1, min(args.images, 500)))
    learning_curve()


if __name__ == "__main__":
    main()
