"""Registered models by name and version or alias: resolved, loaded once, kept within bounds.

`ModelCache.get("users", "champion")` resolves the alias through `udfs.model_function.
resolve_model`, downloads and loads the version once, and keeps it among the most recently used
(`max_models`, and a bound on the summed artifact size). A background thread re-resolves every
alias in use each `refresh_seconds`: when `champion` moves, the new version is loaded first and
then served, without a restart and without a slow request.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from lakegate_config.redaction import redact
from model_server.errors import BadModelReference, ModelNotFound, RegistryUnavailable
from udfs.errors import ModelStoreUnavailable, ModelUsageError
from udfs.model_function import ResolvedModel, download_model, resolve_model
from udfs.scoring import score_batch
from udfs.signature_frame import SignatureInputs, signature_inputs_of

log = logging.getLogger("lakegate.model_server")


@dataclass
class LoadedModel:
    """One model version in memory, ready to score."""

    name: str
    version: str
    pyfunc: Any
    inputs: SignatureInputs
    size_bytes: int
    folder: Path
    loaded_seconds: float

    def score(self, frame: pd.DataFrame) -> pd.Series[Any] | pd.DataFrame:
        """Score `frame` (the signature's inputs) as the SQL functions do (`udfs.scoring`)."""
        return score_batch(self.pyfunc, (frame,), self.inputs.spec)


# MLflow's HTTP client retries a refused connection 7 times with backoff (minutes) and waits
# 120 s per request: a server would notice a registry that went away minutes late. Serving
# uses these unless the environment sets them.
REGISTRY_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# A registered model name: ASCII word characters, spaces and '-', in parts joined by single
# dots (Unity Catalog's cat.schema.model too), so never '..', '/', '\\', '%' or a control
# character; a version is digits, an alias a word. /openapi.json publishes the same patterns.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_ -]*(\.[A-Za-z0-9_ -]+)*$"
REFERENCE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
MAX_NAME_LENGTH = 256
_PATTERNS = {
    "name": (
        re.compile(MODEL_NAME_PATTERN.strip("^$"), re.ASCII),
        "letters, digits, '_', '-' and spaces, in parts joined by single dots",
    ),
    "version": (
        re.compile(REFERENCE_PATTERN.strip("^$"), re.ASCII),
        "a version number or an alias of letters, digits, '_' and '-'",
    ),
}


def check_reference(name: str, reference: str) -> None:
    """Refuse a model name or version reference that cannot name a registered model.

    Raises:
        BadModelReference: the name or reference has a character or length no registry name
            has ('..', '/', '%', control characters, more than 256 characters).
    """
    for label, value in (("name", name), ("version", reference)):
        if len(value) > MAX_NAME_LENGTH:
            raise BadModelReference(
                f"the model {label} is {len(value)} characters long; at most {MAX_NAME_LENGTH}"
            )
        pattern, what = _PATTERNS[label]
        if not pattern.fullmatch(value):  # fullmatch: `$` would let a trailing newline in
            raise BadModelReference(f"the model {label} {value[:80]!r} is not {what}")


_preloading: list[threading.Thread] = []


def preload_model_libraries_in_background() -> None:
    """Import MLflow's pyfunc, scikit-learn and skops in a thread (`udfs.compiled.preload`)."""
    from udfs.compiled.preload import preload_model_libraries

    _preloading.append(preload_model_libraries())


def _wait_for_preload() -> None:
    """Let the preloading thread finish first: one thread imports them, never two at once."""
    for thread in _preloading:
        thread.join()


def is_alias(reference: str) -> bool:
    """Whether a version reference moves (an alias or `latest`) rather than a version number."""
    return not reference.isdigit()


def model_uri(name: str, reference: str) -> str:
    """`models:/name/3` for a version, `models:/name@alias` for an alias, `.../latest` too."""
    if reference.isdigit() or reference == "latest":
        return f"models:/{name}/{reference}"
    return f"models:/{name}@{reference}"


def _is_absent(exc: ModelUsageError) -> bool:
    """Whether `resolve_model` failed because the model, alias or version does not exist.

    It raises `from None` for every failure; the exception it was handling (kept as the
    context) tells an absent resource (none, or RESOURCE_DOES_NOT_EXIST) from a registry that
    could not be asked.
    """
    context = exc.__context__
    if context is None:
        return True
    return isinstance(context, MlflowException) and context.error_code == "RESOURCE_DOES_NOT_EXIST"


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class ModelCache:
    """Resolved references and loaded versions, shared by every request of one server.

    One lock guards both maps: request threads add references and versions while `/health`,
    `/metrics` and the alias refresher read them (each reads a copy taken under the lock).
    """

    def __init__(
        self,
        *,
        tracking_uri: str,
        registry_uri: str,
        refresh_seconds: float,
        max_models: int,
        max_bytes: int,
        on_load: Callable[[LoadedModel], None] | None = None,
        on_evict: Callable[[LoadedModel], None] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.refresh_seconds = refresh_seconds
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._on_load = on_load
        self._on_evict = on_evict
        self._references: dict[tuple[str, str], str] = {}
        self._loaded: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._problems: dict[str, str] = {}

    def resolve(self, name: str, reference: str) -> str:
        """The version `reference` points at now (asks the registry).

        Raises:
            ModelNotFound: no such model, version or alias.
            RegistryUnavailable: the registry cannot be reached.
        """
        resolved = self._resolve_model(name, reference)
        return str(resolved.model_version)

    def _resolve_model(self, name: str, reference: str) -> ResolvedModel:
        try:
            return resolve_model(
                model_uri(name, reference),
                tracking_uri=self.tracking_uri,
                registry_uri=self.registry_uri,
            )
        except ModelStoreUnavailable as exc:
            raise RegistryUnavailable(str(exc)) from None
        except ModelUsageError as exc:
            if _is_absent(exc):
                raise ModelNotFound(str(exc)) from None
            # Not absent: the registry failed mid-resolution (e.g. it went away between two
            # calls); say so, with MLflow's own reason, not "no version".
            raise RegistryUnavailable(
                f"model {model_uri(name, reference)}: the registry {redact(self.registry_uri)} "
                f"failed: {exc.__context__}"
            ) from None

    def get(self, name: str, reference: str) -> LoadedModel:
        """The loaded model `reference` (a version, an alias or `latest`) of `name` serves now.

        Raises:
            BadModelReference: the name or reference cannot be a registered model's.
        """
        check_reference(name, reference)
        key = (name, reference)
        with self._lock:
            version = self._references.get(key)
        if version is None:
            resolved = self._resolve_model(name, reference)
            version = str(resolved.model_version)
            model = self._load(name, version, resolved)
            with self._lock:
                self._references[key] = version
            return model
        return self._load(name, version)

    def cached(self, name: str, reference: str) -> LoadedModel | None:
        """The loaded model `reference` serves now, if it is loaded; never asks the registry."""
        with self._lock:
            version = self._references.get((name, reference))
            if version is None or (model := self._loaded.get((name, version))) is None:
                return None
            self._loaded.move_to_end((name, version))
            return model

    def _load(self, name: str, version: str, resolved: ResolvedModel | None = None) -> LoadedModel:
        key = (name, version)
        with self._lock:
            model = self._loaded.get(key)
            if model is not None:
                self._loaded.move_to_end(key)
                return model
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:  # one download per version, however many requests wait for it
            with self._lock:
                model = self._loaded.get(key)
            if model is not None:
                return model
            model = self._download_and_load(name, version, resolved)
            with self._lock:
                self._loaded[key] = model
                evicted = self._evict_beyond_bounds(keep=key)
        for old in evicted:
            shutil.rmtree(old.folder, ignore_errors=True)
            if self._on_evict:
                self._on_evict(old)
        if self._on_load:
            self._on_load(model)
        return model

    def _download_and_load(
        self, name: str, version: str, resolved: ResolvedModel | None
    ) -> LoadedModel:
        _wait_for_preload()
        import mlflow.pyfunc

        started = time.perf_counter()
        if resolved is None or resolved.model_version != version:
            resolved = self._resolve_model(name, version)
        try:
            folder, local_path = download_model(resolved, tracking_uri=self.tracking_uri)
        except (ModelStoreUnavailable, ModelUsageError) as exc:
            raise RegistryUnavailable(str(exc)) from None
        pyfunc = mlflow.pyfunc.load_model(str(local_path))
        inputs = signature_inputs_of(pyfunc.metadata.signature, f"model {name} version {version}")
        model = LoadedModel(
            name=name,
            version=version,
            pyfunc=pyfunc,
            inputs=inputs,
            size_bytes=_folder_size(folder),
            folder=folder.parent,
            loaded_seconds=time.perf_counter() - started,
        )
        log.info("loaded model %s version %s in %.2f s", name, version, model.loaded_seconds)
        return model

    def _evict_beyond_bounds(self, keep: tuple[str, str]) -> list[LoadedModel]:
        """Drop least recently used versions until both bounds hold (never `keep`)."""
        evicted = []
        while len(self._loaded) > 1 and (
            len(self._loaded) > self.max_models
            or sum(m.size_bytes for m in self._loaded.values()) > self.max_bytes
        ):
            oldest = next(k for k in self._loaded if k != keep)
            evicted.append(self._loaded.pop(oldest))
            log.info("unloaded model %s version %s (cache bound)", *oldest)
        return evicted

    def loaded(self) -> list[LoadedModel]:
        """The loaded versions, least recently used first."""
        with self._lock:
            return list(self._loaded.values())

    def served_references(self) -> dict[str, str]:
        """What each reference in use resolves to: `{"users@champion": "3", ...}`."""
        with self._lock:  # request threads add references meanwhile
            references = list(self._references.items())
        return {f"{n}@{r}" if is_alias(r) else f"{n}/{r}": v for (n, r), v in references}

    def refresh_aliases(self) -> list[tuple[str, str, str, str]]:
        """Re-resolve every alias in use; load a moved alias's new version, then switch to it.

        Returns:
            `(name, alias, old version, new version)` for each alias that moved.
        """
        moved = []
        with self._lock:
            references = list(self._references.items())
        for (name, reference), version in references:
            if not is_alias(reference):
                continue
            try:
                resolved = self._resolve_model(name, reference)
            except ModelNotFound:
                self._problem(name, reference, None)
                with self._lock:  # the next request answers 404
                    self._references.pop((name, reference), None)
                log.warning("model %s: %s no longer resolves", name, reference)
                continue
            except RegistryUnavailable as exc:
                log.warning("keeping %s@%s = %s: %s", name, reference, version, exc)
                self._problem(name, reference, f"serving version {version}: {exc}")
                continue
            new_version = str(resolved.model_version)
            if new_version != version:
                try:
                    self._load(name, new_version, resolved)
                except RegistryUnavailable as exc:
                    self._problem(name, reference, f"serving version {version}: {exc}")
                    continue
                with self._lock:
                    self._references[(name, reference)] = new_version
                moved.append((name, reference, version, new_version))
                log.info("model %s@%s moved from %s to %s", name, reference, version, new_version)
            self._problem(name, reference, None)
        return moved

    def _problem(self, name: str, reference: str, problem: str | None) -> None:
        """Note (or, with None, clear) why an alias could not be re-resolved."""
        label = f"{name}@{reference}"
        with self._lock:
            if problem is None:
                if self._problems.pop(label, None) is not None:
                    log.info("%s re-resolved again", label)
            else:
                since = self._problems.get(label, "").partition(" | ")[0] or time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime()
                )
                self._problems[label] = f"{since} | {problem}"

    def problems(self) -> dict[str, str]:
        """Aliases the last refresh could not re-resolve: `{"m@champion": "since | why"}`."""
        with self._lock:
            return dict(self._problems)

    def start_refreshing(self) -> None:
        """Re-resolve aliases every `refresh_seconds` in a background thread."""

        def loop() -> None:
            while not self._stop.wait(self.refresh_seconds):
                try:
                    self.refresh_aliases()
                except Exception:  # keep serving what is loaded; the log says why
                    log.exception("re-resolving aliases failed")

        self._refresher = threading.Thread(target=loop, name="alias-refresh", daemon=True)
        self._refresher.start()

    def close(self) -> None:
        """Stop refreshing and remove the downloaded artifacts."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
        with self._lock:
            for model in self._loaded.values():
                shutil.rmtree(model.folder, ignore_errors=True)
            self._loaded.clear()
