"""Verdicts of registration kept per model version, so a model is proven once, not per process.

A verdict is what `udfs.compiled.compile_model_function` concluded for one model: the verified
expression (SQL text, steps, sizes, rows compared) or the reason it keeps the UDF
(unsupported, or disagreeing). It is a JSON file under the cache folder
(`$LAKEGATE_COMPILED_CACHE`, default `~/.cache/lakegate/compiled`; `off` disables it), named by
a key that covers everything the verdict depends on:

- the model's files (MLmodel, the serialized estimator, the input example), by content;
- the function: SQL name (it is in the expression's error messages), inputs, return type, size
  bound;
- the translator: the source of every module of `udfs.compiled` and of `udfs.scoring` (the
  reference scoring), and the versions of scikit-learn, numpy and Spark.

Any change to one of those is another key, so a stale verdict is never read (changing the
translator's code invalidates every verdict). Files are written atomically; an unreadable one is
a miss.

A cached verdict registers its SQL without proving it again, so it is signed: an HMAC-SHA256 of
its key and content with a random per-user key (`.verdict-key`, created 0600 in the folder,
which is kept 0700). A verdict whose signature does not match (edited, copied under another
key, written by someone else) is a miss: the model is proven again and the verdict rewritten.
A folder or key file that others could write (group/other write bits, another owner) is not
used at all.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from udfs.model_function import ModelFunction

_LOG = logging.getLogger("udfs.compiled")
CACHE_ENV = "LAKEGATE_COMPILED_CACHE"
KEY_FILE = ".verdict-key"
DEFAULT_CACHE = Path("~/.cache/lakegate/compiled")
COMPILED = "compiled"
UDF = "udf"


@dataclass(frozen=True)
class Verdict:
    """What registration concluded for one model and function.

    Attributes:
        path: `compiled` (the expression was verified) or `udf` (kept the UDF).
        sql: the verified expression (compiled only), its trees as placeholders.
        shared: the texts of those placeholders (`udfs.compiled.sql_text.expand`).
        steps: the translated steps, in order (compiled only).
        nodes: tree nodes and linear terms emitted.
        largest_tree: nodes of the largest single tree.
        verified_rows: rows the expression and the model agreed on.
        reason: why the UDF is kept (udf only).

    """

    path: str
    sql: str = ""
    shared: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    nodes: int = 0
    largest_tree: int = 0
    verified_rows: int = 0
    reason: str = ""


def cache_folder() -> Path | None:
    """The verdicts' folder, or None when `$LAKEGATE_COMPILED_CACHE` is `off`."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() == "off":
        return None
    return Path(configured or DEFAULT_CACHE).expanduser()


def translator_sources() -> list[Path]:
    """The code a verdict depends on: every module of `udfs.compiled`, and `udfs.scoring`."""
    import udfs.scoring

    return [*sorted(Path(__file__).parent.glob("*.py")), Path(udfs.scoring.__file__)]


def source_digest(sources: Sequence[Path], versions: Sequence[str]) -> str:
    """A short hash of the files' names and contents and of the library versions."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    for version in versions:
        digest.update(version.encode())
    return digest.hexdigest()[:16]


@functools.cache
def translator_version() -> str:
    """The translator's version: its code and the libraries whose semantics it repeats."""
    # Installed versions, read without importing scikit-learn (about 1 s in a fresh process,
    # which a cached verdict otherwise never pays: the model is not loaded).
    from importlib.metadata import version

    versions = tuple(version(name) for name in ("scikit-learn", "numpy", "pyspark"))
    return source_digest(translator_sources(), versions)


def _model_digest(local_path: str) -> str:
    digest = hashlib.sha256()
    root = Path(local_path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def verdict_key(function: ModelFunction, max_tree_nodes: int) -> str:
    """The verdict's file name stem for `function` (see the module's docstring)."""
    described = {
        "model": _model_digest(function.local_path),
        "name": function.name,
        "inputs": [dataclasses.astuple(item) for item in function.inputs],
        "return_type": function.return_type.json(),
        "max_tree_nodes": max_tree_nodes,
        "translator": translator_version(),
    }
    text = json.dumps(described, sort_keys=True)
    return f"{function.name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _private(path: Path) -> bool:
    """Whether `path` is ours and nobody else can write it (no group or other write bit)."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _signing_key(folder: Path) -> bytes | None:
    """The folder's signing key, made on first use; None when the folder is not private."""
    key_file = folder / KEY_FILE
    try:
        if not key_file.exists():  # mkstemp's file is 0600; two first writers: the last wins
            _write_atomically(key_file, secrets.token_hex(32))
        if folder.stat().st_uid == os.getuid():
            folder.chmod(0o700)
        if not (_private(folder) and _private(key_file)) or key_file.stat().st_mode & 0o077:
            _LOG.warning("verdict cache %s is not private to this user: not used", folder)
            return None
        key = bytes.fromhex(key_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return key if len(key) == 32 else None


def _signature(signing_key: bytes, key: str, content: str) -> str:
    message = json.dumps([key, content]).encode()
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


def read_verdict(key: str) -> Verdict | None:
    """The verdict stored under `key`, or None (no cache or file, unreadable, badly signed)."""
    folder = cache_folder()
    signing_key = _signing_key(folder) if folder is not None else None
    if folder is None or signing_key is None:
        return None
    try:
        document: dict[str, Any] = json.loads((folder / f"{key}.json").read_text())
        content = str(document["verdict"])
        if not hmac.compare_digest(
            _signature(signing_key, key, content), str(document["signature"])
        ):
            _LOG.warning("cached verdict %s is not signed by this cache: proving again", key)
            return None
        data: dict[str, Any] = json.loads(content)
        data["steps"] = tuple(data.get("steps", ()))
        data["shared"] = tuple(data.get("shared", ()))
        verdict = Verdict(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return verdict if verdict.path in (COMPILED, UDF) else None


def _write_atomically(target: Path, text: str) -> None:
    """Write `text` to `target` through a temporary file; an unwritable cache is skipped."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp"
        )
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, target)
    except OSError:
        return


def write_verdict(key: str, verdict: Verdict) -> None:
    """Store `verdict` under `key` atomically; a cache that cannot be written is skipped."""
    folder = cache_folder()
    signing_key = _signing_key(folder) if folder is not None else None
    if folder is not None and signing_key is not None:
        content = json.dumps(dataclasses.asdict(verdict))
        document = {"verdict": content, "signature": _signature(signing_key, key, content)}
        _write_atomically(folder / f"{key}.json", json.dumps(document))


def _model_hint(model_uri: str, folder: Path) -> Path:
    return folder / "models" / hashlib.sha256(model_uri.encode()).hexdigest()[:24]


def remember_model(model_uri: str, key: str) -> None:
    """Note that `model_uri` (as the user wrote it) was last registered under verdict `key`."""
    folder = cache_folder()
    if folder is not None:
        _write_atomically(_model_hint(model_uri, folder), key)


def verdict_likely_cached(model_uri: str) -> bool:
    """Whether the last registration of `model_uri` left a verdict, known before any lookup.

    A hint, not the key: an alias moved to a new version still answers True (that version's
    first registration then proves it as usual).
    """
    folder = cache_folder()
    if folder is None:
        return False
    try:
        key = _model_hint(model_uri, folder).read_text().strip()
    except OSError:
        return False
    return bool(key) and (folder / f"{key}.json").is_file()
