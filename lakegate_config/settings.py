"""Typed configuration read from `conf/<env>.yaml`.

Relative paths in a configuration file are resolved against the project root (the folder that
holds `conf/`), so a job behaves the same from whatever folder it is started.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lakegate_config.yaml_document import DocumentError, load_yaml_document, parse_document

DEFAULT_ENV = "local"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def conf_string(value: object) -> str:
    """A YAML scalar as Spark and Delta take settings: booleans spelled `true`/`false`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    """How the SparkSession is built.

    Attributes:
        class_archive: the folder of the driver JVM's class-data archive, written by
            `make setup` (`python -m spark_jobs.jars`) and mapped by every later session;
            null: no archive.
    """

    master: str | None = "local[2]"
    app_name: str = "lakegate"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)
    class_archive: Path | None = Path("~/.cache/lakegate/jvm")


class DeequSettings(_Strict):
    """Where the Deequ jar comes from: a Maven coordinate, or a local jar for air-gapped hosts."""

    coordinate: str = "com.amazon.deequ:deequ:2.1.0-spark-3.5"
    excludes: list[str] = Field(
        default_factory=lambda: [
            "net.sourceforge.f2j:arpack_combined_all",
            "software.amazon.glue:dqdl",
        ]
    )
    jar: Path | None = None
    ivy_cache: Path = Path("~/.cache/lakegate/ivy")


class DeltaSettings(_Strict):
    """Where the Delta Lake jars come from: a Maven coordinate, or local jars for air-gapped hosts.

    The coordinate's version must match the installed `delta-spark` Python package.
    """

    coordinate: str = "io.delta:delta-spark_2.12:3.3.3"
    jars: list[Path] = Field(default_factory=list)


class KafkaSettings(_Strict):
    """Spark's Kafka connector, for streaming from Kafka topics; off unless configured.

    Attributes:
        coordinate: the `spark-sql-kafka-0-10` Maven coordinate, resolved and cached like
            Deequ's (its Spark version need not be the installed one's patch release: Maven
            Central may lack it); null: no connector.
        jars: local copies of the connector and its dependencies for air-gapped hosts; when
            set, the coordinate is not used.
        excludes: dependencies left out of the resolution: Spark ships the same Hadoop client
            (50 MB a session would otherwise copy for its executors).
    """

    coordinate: str | None = None
    jars: list[Path] = Field(default_factory=list)
    excludes: list[str] = Field(
        default_factory=lambda: [
            "org.apache.hadoop:hadoop-client-api",
            "org.apache.hadoop:hadoop-client-runtime",
        ]
    )


class OutputSettings(_Strict):
    """How jobs write their tables.

    Attributes:
        format: `delta` (one transaction per overwrite) or `parquet`.
        delta_properties: Delta table properties every Delta output gets, set on creation and
            on each overwrite where the table's value differs (for example
            `delta.dataSkippingNumIndexedCols: 8`, or `delta.dataSkippingStatsColumns` naming
            the columns readers filter on). Delta checks the names and values before a job
            computes anything; an empty map keeps Delta's defaults.
    """

    format: Literal["delta", "parquet"] = "delta"
    delta_properties: dict[str, str | int | bool] = Field(default_factory=dict)

    def table_properties(self) -> dict[str, str]:
        """`delta_properties` as Delta takes them: strings, booleans spelled `true`/`false`."""
        return {key: conf_string(value) for key, value in self.delta_properties.items()}


class MlflowSettings(_Strict):
    """The MLflow tracking store and registry; embedded sqlite by default."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    artifact_root: Path | None = None
    experiment: str = "lakegate"


class ScoringSettings(_Strict):
    """How model functions score: `compiled: false` keeps every model on the pandas UDF."""

    compiled: bool = True


class SqlServerSettings(_Strict):
    """`lakegate serve-sql`: where the JDBC endpoint listens and how it is set up.

    Attributes:
        host: the bind address; beyond loopback only with `hive_conf` naming an authentication.
        port: the HiveServer2 (JDBC/ODBC) port.
        refresh_interval_seconds: how often registered aliases are re-resolved (0: never; then
            only `SELECT refresh_models()`).
        statement_timeout_seconds: a statement running longer is cancelled, its tasks freed,
            and its client told so (Spark's `spark.sql.thriftServer.queryTimeout`; 0: no limit).
            A client's `Statement.setQueryTimeout` may only shorten it.
        hive_conf: HiveServer2 settings passed as they are, e.g. `hive.server2.authentication:
            LDAP` and `hive.server2.authentication.ldap.url`.
        spark_conf: Spark settings the server's session adds to `spark.conf` (static ones such
            as the Thrift server's single session must be set before the session starts).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=10000, ge=1, le=65535)
    refresh_interval_seconds: float = Field(default=60.0, ge=0)
    statement_timeout_seconds: int = Field(default=0, ge=0)
    hive_conf: dict[str, str | int | float | bool] = Field(default_factory=dict)
    spark_conf: dict[str, str | int | float | bool] = Field(
        default_factory=lambda: dict[str, str | int | float | bool](
            {"spark.sql.hive.thriftServer.singleSession": True}
        )
    )


class OnlineStoreSettings(_Strict):
    """Where `lakegate materialize` writes the latest feature rows and the model server reads them.

    Attributes:
        kind: `sqlite` (a file under the state folder, the default) or `redis`.
        path: the SQLite file; relative paths resolve against the project root; default
            `<state folder>/online_store.db`.
        url: the Redis URL (`redis://127.0.0.1:6379/0`) when `kind` is `redis`.
        batch_rows: rows written per batch while materializing.
    """

    kind: Literal["sqlite", "redis"] = "sqlite"
    path: Path | None = None
    url: str | None = None
    batch_rows: int = Field(default=5000, ge=1)


class ServingSettings(_Strict):
    """`lakegate serve`: the REST model server.

    Attributes:
        host: the bind address; beyond loopback only with `auth_token_env` set and its
            variable holding a token.
        port: the HTTP port.
        alias_refresh_seconds: how often served aliases (`champion`) are re-resolved.
        max_loaded_models: loaded model versions kept in memory (least recently used go first).
        max_loaded_megabytes: a bound on the loaded models' artifact size on disk, summed.
        auth_token_env: the environment variable holding the bearer token clients must send;
            None means no authentication (loopback only).
        feature_view: the online feature view `predict-by-key` reads when a request names none.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    alias_refresh_seconds: float = Field(default=10.0, gt=0)
    max_loaded_models: int = Field(default=8, ge=1)
    max_loaded_megabytes: float = Field(default=2048.0, gt=0)
    auth_token_env: str | None = None
    feature_view: str = "features"


# Spark's status store keeps this many SQL executions, jobs and stages for a stream's session
# (Spark's default: 1,000 each, kept even with the UI off; a stream batch runs some 20 of each).
STREAM_RETAINED = 100


class StreamSettings(_Strict):
    """`lakegate stream validate` and `stream predict`: their long-running session.

    Attributes:
        spark_conf: Spark settings a stream's session adds to `spark.conf` (static ones: set
            before the session starts). By default Spark keeps the last 100 SQL executions,
            jobs and stages, not 1,000: over a long stream their plans and task metrics held
            about 40 MB of driver heap (docs/performance.md).
    """

    spark_conf: dict[str, str | int | float | bool] = Field(
        default_factory=lambda: dict[str, str | int | float | bool](
            {
                "spark.sql.ui.retainedExecutions": STREAM_RETAINED,
                "spark.ui.retainedJobs": STREAM_RETAINED,
                "spark.ui.retainedStages": STREAM_RETAINED,
            }
        )
    )


class Settings(_Strict):
    """Everything a job needs to know about its environment."""

    env: str = DEFAULT_ENV
    project_root: Path = PROJECT_ROOT
    state_dir: Path = Path(".lakegate")
    spark: SparkSettings = Field(default_factory=SparkSettings)
    deequ: DeequSettings = Field(default_factory=DeequSettings)
    delta: DeltaSettings = Field(default_factory=DeltaSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    outputs: OutputSettings = Field(default_factory=OutputSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    metrics_repository: Path | None = None
    models: dict[str, str] = Field(default_factory=dict)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    # Feature tables by name: `lakegate sql` and `serve-sql` register a view over each path.
    tables: dict[str, str] = Field(default_factory=dict)
    sql_server: SqlServerSettings = Field(default_factory=SqlServerSettings)
    online_store: OnlineStoreSettings = Field(default_factory=OnlineStoreSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)

    def resolve(self, path: Path | str) -> Path:
        """Resolve a configured path: `~` expanded, relative paths against the project root."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.project_root / path).resolve()

    @property
    def local_jars(self) -> list[Path]:
        """Jars configured as local files (`deequ.jar`, `delta.jars`, `kafka.jars`), resolved."""
        configured = [self.deequ.jar] if self.deequ.jar is not None else []
        configured += self.delta.jars + self.kafka.jars
        return [self.resolve(jar) for jar in configured]

    @property
    def jar_coordinates(self) -> list[str]:
        """Maven coordinates to resolve: those not replaced by local jars."""
        coordinates = [] if self.deequ.jar is not None else [self.deequ.coordinate]
        coordinates += [] if self.delta.jars else [self.delta.coordinate]
        if self.kafka.coordinate and not self.kafka.jars:
            coordinates.append(self.kafka.coordinate)
        return coordinates

    @property
    def jar_excludes(self) -> list[str]:
        """Dependencies of the coordinates that Ivy must leave out."""
        kafka = self.kafka.excludes if self.kafka.coordinate and not self.kafka.jars else []
        return self.deequ.excludes + kafka

    @property
    def state_path(self) -> Path:
        """The local state directory (metrics history, embedded MLflow store)."""
        return self.resolve(self.state_dir)

    @property
    def metrics_repository_path(self) -> Path:
        """The Deequ metrics repository file."""
        configured = self.metrics_repository or self.state_path / "metrics" / "metrics.json"
        return self.resolve(configured)

    @property
    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, else the configured URI, else sqlite under the state directory."""
        return (
            os.environ.get("MLFLOW_TRACKING_URI")
            or self.mlflow.tracking_uri
            or f"sqlite:///{self.state_path / 'mlflow.db'}"
        )

    @property
    def registry_uri(self) -> str:
        """MLFLOW_REGISTRY_URI, else the configured URI, else the tracking URI."""
        return (
            os.environ.get("MLFLOW_REGISTRY_URI") or self.mlflow.registry_uri or self.tracking_uri
        )

    @property
    def online_store_path(self) -> Path:
        """The SQLite online store file: `online_store.path`, else under the state folder."""
        return self.resolve(self.online_store.path or self.state_path / "online_store.db")

    @property
    def artifact_root(self) -> str:
        """Artifact location for new experiments, absolute so runs never scatter `mlruns/`."""
        root = self.mlflow.artifact_root or self.state_path / "mlartifacts"
        return self.resolve(root).as_uri()


def conf_dir() -> Path:
    """The configuration folder: LAKEGATE_CONF_DIR, else `./conf`, else the project's `conf/`."""
    if configured := os.environ.get("LAKEGATE_CONF_DIR"):
        return Path(configured).resolve()
    here = Path.cwd() / "conf"
    return here if here.is_dir() else PROJECT_ROOT / "conf"


def load_settings(env: str | None = None, directory: Path | None = None) -> Settings:
    """Load `conf/<env>.yaml` (env from the argument, LAKEGATE_ENV, or `local`).

    Raises:
        DocumentError: the file is missing or a field is wrong (the message names file and line).
    """
    env = env or os.environ.get("LAKEGATE_ENV") or DEFAULT_ENV
    directory = directory or conf_dir()
    path = directory / f"{env}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise DocumentError(
            f"{path}: no configuration for environment {env!r}; known environments: "
            f"{', '.join(known) or 'none'} (choose one with --env or LAKEGATE_ENV)"
        )
    document = load_yaml_document(path)
    data = dict(document.data or {})
    data.setdefault("env", env)
    data.setdefault("project_root", str(directory.parent))
    settings = parse_document(
        type(document)(path=document.path, data=data, lines=document.lines), Settings
    )
    if state := os.environ.get("LAKEGATE_STATE_DIR"):
        settings = settings.model_copy(update={"state_dir": Path(state)})
    return settings
