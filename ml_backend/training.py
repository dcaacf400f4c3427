"""One training run: fetch annotations from Label Studio, fit each servable control, publish, tell LS.

``Trainer.train`` is synchronous and holds the project's lock from fetching to publishing, so runs of
one project never overlap, even across processes. The schedulers (``ml_backend.scheduler``) decide when
it runs; ``train_in_subprocess`` runs it in a child process for the thread scheduler.

After publishing, the run makes the new version useful in Label Studio:
- it pushes predictions of the new version for the project's unlabeled tasks (``PREDICT_AFTER_TRAINING``
  tasks at most), because LS's uncertainty stream only ranks tasks that have a prediction of the
  project's ``model_version``;
- it points the project's ``model_version`` at the new version (``SYNC_PROJECT_MODEL_VERSION``), unless
  someone chose a version that is not ours;
- it deletes from LS the predictions of versions the store no longer keeps, so they do not pile up, up to
  ``PRUNE_PREDICTIONS_MAX`` per version: LS 1.23.2 deletes them one by one in one transaction that holds
  the project's summary row, so every annotation save and task PATCH of the project waits for it
  (100,000 took over 26 minutes); larger sets are left, logged and reported.
"""

from __future__ import annotations

import logging
import multiprocessing
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from itertools import islice
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import train_test_split

from ls_companion.records import unique_tasks
from ml_backend.dataset import Consensus, Example, examples, is_labeled, majority_consensus
from ml_backend.errors import BackendError, TrainingError
from ml_backend.labelconfig import ControlSpec, ParsedConfig, parse_label_config
from ml_backend.media import MediaFetcher, read_inputs
from ml_backend.models.bundle import ModelBundle, TrainedControl
from ml_backend.predictor import minimum_score, predict_tasks, serving_controls
from ml_backend.registry import plugin_named
from ml_backend.results import class_metrics
from ml_backend.scheduler import Credentials, pick_credentials
from ml_backend.settings import BackendSettings
from ml_backend.store import LoadedModel, ModelStore, is_version

if TYPE_CHECKING:
    from ls_companion.client import LabelStudioClient
    from ls_companion.records import MLBackend, Project, Task

log = logging.getLogger(__name__)

#: Fewest examples before a holdout is split off (below it every example goes into the model).
MIN_EXAMPLES_FOR_HOLDOUT = 20
_LIBRARIES = (
    "scikit-learn",
    "python-crfsuite",
    "numpy",
    "scikit-image",
    "rapidocr-onnxruntime",
    "ls-companion",
)


#: Decimals of the stored out-of-fold probabilities (the version's metadata is JSON).
OOF_DECIMALS = 4


@dataclass(frozen=True, slots=True)
class FittedControl:
    trained: TrainedControl
    report: dict[str, Any]
    oof: dict[str, Any] | None = None  # out_of_fold(): stored beside the version, not in its metadata


def fit_control(
    spec: ControlSpec,
    items: Sequence[Example],
    *,
    inputs: Sequence[Any] | None = None,
    min_examples: int = 4,
    holdout_fraction: float = 0.2,
    settings: BackendSettings | None = None,
) -> FittedControl:
    """Fit one control with its plugin and measure it on examples the measured model did not see.

    A model that cross-validated itself (the model selection) is measured on its out-of-fold
    probabilities, so training fits it once; any other is first fitted and measured on a holdout split
    (with enough examples), then refitted on all. ``inputs`` are the model inputs of ``items``
    (default: their texts; decoded images for an Image control); ``settings`` reach the plugin (e.g.
    WORD_CLUSTERS for the NER tagger)."""
    if len(items) < min_examples:
        raise TrainingError(f"{spec.name}: {len(items)} labeled examples, {min_examples} needed")
    _check_targets(spec, items)
    plugin = plugin_named(spec.plugin)
    pairs = list(zip(items, [e.text for e in items] if inputs is None else inputs, strict=True))
    model = _fit(spec, pairs, settings)
    holdout = _out_of_fold_metrics(spec, model, items)
    train_part, test_part = ([], []) if holdout else _split(spec, pairs, holdout_fraction)
    if test_part:
        probe = _fit(spec, train_part, settings)
        metrics = plugin.evaluate(spec, probe, [x for _, x in test_part], [e.target for e, _ in test_part])
        holdout = {"size": len(test_part), "method": "holdout", **metrics}
    report: dict[str, Any] = {
        "kind": spec.kind,
        "plugin": spec.plugin,
        "classes": list(model.classes_),
        "training_size": len(items),
        "holdout": holdout,
        **plugin.report(spec, model),
    }
    return FittedControl(TrainedControl(spec, model), report, out_of_fold(model, items))


def out_of_fold(model: Any, items: Sequence[Example]) -> dict[str, Any] | None:
    """The model selection's calibrated out-of-fold probabilities of ``items`` (None without CV).

    Kept with the version (``task_ids``, ``proba`` rows in the ``classes`` order), so that the quality
    engine finds likely label errors and runs model-assisted consensus without training again.
    """
    found = _selection_oof(model, items)
    if found is None:
        return None
    classes, proba = found
    return {
        "task_ids": [e.task_id for e in items],
        "classes": list(classes),
        "proba": np.round(proba, OOF_DECIMALS).tolist(),
    }


def _selection_oof(model: Any, items: Sequence[Example]) -> tuple[tuple[str, ...], Any] | None:
    """(classes, calibrated out-of-fold probabilities) of a model that ran the model selection on ``items``."""
    selection = getattr(model, "selection_", None)
    proba = getattr(selection, "oof_proba", None)
    if proba is None or len(proba) != len(items):
        return None
    return tuple(selection.classes), proba  # type: ignore[union-attr]


def _out_of_fold_metrics(spec: ControlSpec, model: Any, items: Sequence[Example]) -> dict[str, Any] | None:
    """The holdout metrics of ``model``'s cross-validated out-of-fold probabilities (None without CV).

    Every row was predicted by a fold model that did not see it, like a holdout row. Fold models see
    80 % of the labels (the figure leans low while the curve rises) and the candidate was chosen on
    the same rows (it leans high where all are at chance): docs/ml-backend.md has both measured."""
    found = _selection_oof(model, items)
    if found is None:
        return None
    metrics = class_metrics(spec, found[0], found[1], [e.target for e in items])
    return {"size": len(items), "method": "out-of-fold", **metrics}


Pair = tuple[Example, Any]


def _check_targets(spec: ControlSpec, items: Sequence[Example]) -> None:
    if spec.kind == "single" and len({e.target for e in items}) < 2:
        raise TrainingError(f"{spec.name}: every example has the same class; two classes are needed")
    if spec.kind == "multi" and not any(e.target for e in items):
        raise TrainingError(f"{spec.name}: no example has any class selected")
    if spec.kind == "spans" and not any(e.target for e in items):
        raise TrainingError(f"{spec.name}: no example has any labeled span")


def _split(spec: ControlSpec, pairs: Sequence[Pair], fraction: float) -> tuple[list[Pair], list[Pair]]:
    if len(pairs) < MIN_EXAMPLES_FOR_HOLDOUT:
        return list(pairs), []
    stratify = None
    if spec.kind == "single":
        labels = [str(e.target) for e, _ in pairs]
        counts = {label: labels.count(label) for label in set(labels)}
        if min(counts.values()) < 2 or len(counts) > len(pairs) * fraction:
            return list(pairs), []
        stratify = labels
    train_part, test_part = train_test_split(
        list(pairs), test_size=fraction, random_state=0, stratify=stratify
    )
    if spec.kind == "single" and len({e.target for e, _ in train_part}) < 2:
        return list(pairs), []
    return list(train_part), list(test_part)


def _fit(spec: ControlSpec, pairs: Sequence[Pair], settings: BackendSettings | None) -> Any:
    try:
        return plugin_named(spec.plugin).fit(
            spec, [x for _, x in pairs], [e.target for e, _ in pairs], settings
        )
    except ValueError as exc:
        raise TrainingError(f"{spec.name}: {exc}") from None


def project_min_score(backends: Sequence[MLBackend]) -> float | None:
    """The project's ``min_score`` (bootstrap's ``ml_backend.min_score``, in a backend's extra_params)."""
    for backend in backends:
        value = backend.extra_params.get("min_score")
        if isinstance(value, int | float) and 0 <= value <= 1:
            return float(value)
    return None


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def resolve_credentials(settings: BackendSettings, hint: Credentials | None) -> Credentials:
    """LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY first, else what Label Studio sent in /setup."""
    url, token = pick_credentials(settings, hint)
    if not url or not token:
        raise TrainingError(
            "no Label Studio URL or token: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, "
            "or let Label Studio call /setup first"
        )
    return Credentials(url, token)


class Trainer:
    def __init__(
        self, settings: BackendSettings, store: ModelStore, *, consensus: Consensus = majority_consensus
    ) -> None:
        self.settings = settings
        self.store = store
        self.consensus = consensus

    def train(
        self, project_id: int, credentials: Credentials | None = None, *, covered_after: float | None = None
    ) -> dict[str, Any]:
        """Train and publish; ``covered_after`` skips the run if a version fetched data after that time."""
        try:
            with self.store.lock(project_id):
                if covered_after is not None and self._already_covered(project_id, covered_after):
                    return {"status": "skipped", "detail": "a newer training already covered these events"}
                return self._train_locked(project_id, resolve_credentials(self.settings, credentials))
        except BackendError as exc:
            log.warning("project %s: training failed: %s", project_id, exc.detail)
            return {"status": "failed", "error": exc.code, "detail": exc.detail}
        except Exception as exc:
            from ls_companion.errors import CompanionError

            if isinstance(exc, CompanionError):  # Label Studio unreachable, token rejected, ...
                log.warning("project %s: training failed: %s", project_id, exc)
                return {"status": "failed", "error": "label_studio_error", "detail": str(exc)}
            raise

    def _already_covered(self, project_id: int, event_time: float) -> bool:
        latest = self.store.latest_version(project_id)
        if latest is None:
            return False
        fetched = self.store.metadata(project_id, latest).get("training", {}).get("data_fetched_at", 0.0)
        return float(fetched) >= event_time

    def _train_locked(self, project_id: int, credentials: Credentials) -> dict[str, Any]:
        from ls_companion.client import LabelStudioClient

        started = time.time()
        client = LabelStudioClient(credentials.url, credentials.token, timeout=self.settings.http_timeout)
        media = MediaFetcher(self.settings, credentials.url, credentials.token)
        try:
            project = client.get_project(project_id)
            config = parse_label_config(project.label_config)
            if not config.controls:
                reasons = "; ".join(f"{u.name}: {u.reason}" for u in config.unsupported)
                raise TrainingError(f"the project's config has no control this backend serves ({reasons})")
            # Only the annotated tasks carry training data; the unlabeled ones to predict are listed
            # after publishing, up to PREDICT_AFTER_TRAINING (100,000 tasks, 10,000 of them annotated:
            # 117 s to list whole, 27 s this way; docs/scale.md).
            tasks = unique_tasks(client.list_tasks(project_id, data=True, annotations=True, annotated=True))
            backends = client.list_ml_backends(project_id)
            bundle, reports, skipped, oof = self._fit_all(config, tasks, media)
            before = set(self.store.version_names(project_id))
            info = self.store.publish(
                project_id,
                bundle,
                {
                    "label_config_hash": config.config_hash,
                    "min_score": project_min_score(backends),
                    "controls": reports,
                    "skipped_controls": skipped,
                    "libraries": library_versions(),
                    "training": {
                        "tasks": project.task_number,
                        "annotated_tasks": sum(1 for t in tasks if is_labeled(t)),
                        "data_fetched_at": started,
                        "seconds": round(time.time() - started, 3),
                    },
                },
                oof=oof,
            )
            loaded = LoadedModel(project_id, info["version"], bundle, info)
            removed = sorted(before - set(self.store.version_names(project_id)))
            synced = self._sync_label_studio(client, project, config, loaded, removed, backends, media)
        finally:
            client.close()
            media.close()
        return {"status": "published", "version": info["version"], "controls": reports, **synced}

    def _fit_all(
        self, config: ParsedConfig, tasks: Sequence[Task], media: MediaFetcher
    ) -> tuple[ModelBundle, dict[str, Any], dict[str, str], dict[str, Any]]:
        trained: dict[str, TrainedControl] = {}
        reports: dict[str, Any] = {}
        oof: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for spec in config.controls:
            if not plugin_named(spec.plugin).trainable:
                continue
            items = examples(tasks, spec, self.consensus)
            inputs = read_inputs(
                spec, [{"id": e.task_id, "data": {spec.value_key: e.text}} for e in items], media
            )
            try:
                fitted = fit_control(
                    spec,
                    [e for e, x in zip(items, inputs, strict=True) if x is not None],
                    inputs=[x for x in inputs if x is not None],
                    min_examples=self.settings.min_training_examples,
                    holdout_fraction=self.settings.holdout_fraction,
                    settings=self.settings,
                )
            except TrainingError as exc:
                skipped[spec.name] = exc.detail
                continue
            trained[spec.name] = fitted.trained
            reports[spec.name] = fitted.report
            if fitted.oof is not None:
                oof[spec.name] = fitted.oof
        if not trained:
            raise TrainingError("; ".join(skipped.values()) or "nothing to train")
        return ModelBundle(trained), reports, skipped, oof

    def _sync_label_studio(
        self,
        client: LabelStudioClient,
        project: Project,
        config: ParsedConfig,
        loaded: LoadedModel,
        removed_versions: Sequence[str],
        backends: Sequence[MLBackend],
        media: MediaFetcher,
    ) -> dict[str, Any]:
        from ls_companion.client import DEFAULT_PAGE_SIZE

        report: dict[str, Any] = {"predictions_pushed": 0, "project_model_version": project.model_version}
        limit = self.settings.predict_after_training
        if limit:
            unlabeled = client.list_tasks(
                project.id, annotations=False, annotated=False, page_size=min(limit, DEFAULT_PAGE_SIZE)
            )
            todo = list(islice(unlabeled, limit))
            predictions = predict_tasks(
                serving_controls(loaded, config),
                loaded.version,
                [{"id": t.id, "data": t.data} for t in todo],
                media,
                min_score=minimum_score(loaded, self.settings.min_score),
            )
            rows = [
                {
                    "task": t.id,
                    "result": p[0]["result"],
                    "score": p[0]["score"],
                    "model_version": loaded.version,
                }
                for t, p in zip(todo, predictions, strict=True)
                if p
            ]
            report["predictions_pushed"] = client.import_predictions(project.id, rows) if rows else 0
        # LS accepts a project model_version only if predictions of it exist (or a backend has it as
        # its title): with nothing left unlabeled to predict, the pointer stays where it is.
        moving = self.settings.sync_project_model_version and report["predictions_pushed"] > 0
        if moving and self._may_move(project, backends):
            self._point_project_at(client, project, loaded.version, report)
        left = self._delete_pruned(client, project.id, removed_versions, report["project_model_version"])
        if left:
            report["pruned_predictions_left"] = left
        return report

    def _delete_pruned(
        self, client: LabelStudioClient, project_id: int, removed: Sequence[str], current: str | None
    ) -> dict[str, int]:
        """Delete the LS predictions of pruned versions small enough to delete; returns those left."""
        if not removed:
            return {}
        counts = client.model_version_counts(project_id)
        left: dict[str, int] = {}
        for version in removed:
            count = counts.get(version, 0)
            if version == current or count == 0:
                continue
            if count > self.settings.prune_predictions_max:
                left[version] = count
                log.warning(
                    "project %s: left %d predictions of pruned version %s in Label Studio (over "
                    "PRUNE_PREDICTIONS_MAX=%d; deleting them blocks the project's saves): delete them "
                    "outside working hours (Settings > Predictions)",
                    project_id, count, version, self.settings.prune_predictions_max,
                )  # fmt: skip
            else:
                client.delete_model_version_predictions(project_id, version)
        return left

    @staticmethod
    def _point_project_at(
        client: LabelStudioClient, project: Project, version: str, report: dict[str, Any]
    ) -> None:
        """Set the project's model_version; a refusal is logged, not fatal: the model is published."""
        from ls_companion.errors import LabelStudioAPIError

        try:
            client.update_project(project.id, model_version=version)
        except LabelStudioAPIError as exc:  # the model is published and serves; only the pointer failed
            log.warning("project %s: could not set model_version %s: %s", project.id, version, exc)
            report["project_model_version_error"] = str(exc)
            return
        report["project_model_version"] = version

    @staticmethod
    def _may_move(project: Project, backends: Sequence[MLBackend]) -> bool:
        """Move the project's model_version only from nothing, one of our versions, or a backend's title."""
        current = project.model_version
        if not current or is_version(current):
            return True
        return any(b.title == current for b in backends)


def train_in_subprocess(
    settings: BackendSettings,
    project_id: int,
    credentials: Credentials | None,
    covered_after: float | None,
    *,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """``Trainer.train`` in a spawned child process; returns its outcome."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main,
        args=(settings, project_id, credentials, covered_after, sender),
        name=f"ml-backend-train-{project_id}",
        daemon=True,
    )
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            outcome: dict[str, Any] = receiver.recv()
        else:
            outcome = {
                "status": "failed",
                "error": "timeout",
                "detail": f"training took over {timeout:.0f} s",
            }
    except EOFError:
        outcome = {"status": "failed", "error": "crashed", "detail": f"exit code {process.exitcode}"}
    finally:
        receiver.close()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
    log.info("project %s: training %s", project_id, outcome.get("status"))
    return outcome


def _child_main(
    settings: BackendSettings,
    project_id: int,
    credentials: Credentials | None,
    covered_after: float | None,
    sender: Connection,
) -> None:
    from ml_backend.logsetup import configure_logging

    configure_logging(settings)
    store = ModelStore(settings.model_dir, keep_versions=settings.keep_versions)
    try:
        outcome = Trainer(settings, store).train(project_id, credentials, covered_after=covered_after)
    except Exception as exc:
        log.exception("project %s: training crashed", project_id)
        outcome = {"status": "failed", "error": "crashed", "detail": type(exc).__name__}
    sender.send(outcome)
    sender.close()
