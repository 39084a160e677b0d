"""Spark's Thrift JDBC/ODBC server (HiveServer2 protocol) on a warm session.

`HiveThriftServer2.startWithContext` serves the session it is given; with
`spark.sql.hive.thriftServer.singleSession=true` (a static setting, so it comes from
`sql_server.spark_conf` before the session starts: `server_settings`) every client shares that
session and sees the temporary views and model functions registered in the driver. The server
binds to loopback unless HiveServer2 authentication (LDAP, KERBEROS or CUSTOM) is configured in
`sql_server.hive_conf`.

Limitation (one session for every client): a client's `SET` (`spark.sql.session.timeZone`,
`spark.sql.ansi.enabled`, ...), `USE`, temporary views and cached tables change what every
other client sees until they are set back. Clients that need their own settings should
qualify instead (`to_utc_timestamp(ts, 'Europe/Paris')`, `CAST`) and name their temporary views
uniquely. A session per client (`singleSession=false`, where HiveServer2 opens
`SparkSession.newSession()` for each connection) was measured on Spark 3.5 and not taken:
the model functions could follow (a function injected with `SparkSessionExtensions.
injectFunction` reaches every new session; a builder that delegates to the driver's current
one would keep refreshes visible), but the configured `tables:`/`--table` views cannot: a new
session starts with no temporary views, a global temporary view must be named
`global_temp.<name>` (and `global_temp` cannot be the current database), a permanent view
needs SQL text that `table_io.read_table`'s reading options do not fit, and the hook that
could add them per session (an analyzer rule) is a Scala class Python cannot implement.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakegate_config.endpoints import check_port_free, is_loopback
from lakegate_config.settings import Settings
from lakegate_errors import EnvironmentProblem, UserError
from spark_jobs.services.session import jvm_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SINGLE_SESSION = "spark.sql.hive.thriftServer.singleSession"
AUTHENTICATION = "hive.server2.authentication"
AUTH_MODES = ("LDAP", "KERBEROS", "CUSTOM")
BIND_HOST = "hive.server2.thrift.bind.host"
PORT = "hive.server2.thrift.port"
JAVA_OPTIONS = "spark.driver.extraJavaOptions"
# A statement cancelled by its client or by the timeout interrupts its running tasks, so its
# cores go to the next statement at once (false: they run on until they finish).
INTERRUPT_ON_CANCEL = "spark.sql.thriftServer.interruptOnCancel"
QUERY_TIMEOUT = "spark.sql.thriftServer.queryTimeout"
# Per-statement log files under /tmp/<user>/operation_logs: not needed, and noisy to clean up.
DEFAULT_HIVE_CONF = {"hive.server2.logging.operation.enabled": "false"}
# Loggers that report every client disconnect as an error.
_QUIET_LOGGERS = ("org.apache.thrift.server.TThreadPoolServer",)
_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def server_settings(settings: Settings) -> Settings:
    """`settings` with the server's Spark settings added (the single shared session forced on).

    A cancelled statement interrupts its tasks, and `sql_server.statement_timeout_seconds`
    becomes Spark's `spark.sql.thriftServer.queryTimeout` (`sql_server.spark_conf` can still set
    either). HiveServer2 keeps its session state in an in-memory Derby database, which Derby cannot
    create when `derby.system.home` is set (as jobs set it): the server's driver options send
    Derby's log to the state folder instead.
    """
    server = settings.sql_server
    defaults: dict[str, str | int | float | bool] = {INTERRUPT_ON_CANCEL: True}
    if server.statement_timeout_seconds:
        defaults[QUERY_TIMEOUT] = f"{server.statement_timeout_seconds}s"
    conf = {**settings.spark.conf, **defaults, **server.spark_conf, SINGLE_SESSION: True}
    if JAVA_OPTIONS not in conf:
        options = f"-Dderby.stream.error.file={settings.state_path / 'derby.log'}"
        log_config = settings.project_root / "conf" / "log4j2.properties"
        if log_config.is_file():
            options += f" -Dlog4j2.configurationFile={log_config.as_uri()}"
        conf[JAVA_OPTIONS] = options
    spark = settings.spark.model_copy(update={"conf": conf})
    return settings.model_copy(update={"spark": spark})


def check_bind(host: str, hive_conf: dict[str, Any]) -> None:
    """Refuse a bind beyond loopback unless an authentication mode is configured.

    Raises:
        UserError: a non-loopback host without LDAP, KERBEROS or CUSTOM authentication.
    """
    mode = str(hive_conf.get(AUTHENTICATION, "NONE")).upper()
    if is_loopback(host) or mode in AUTH_MODES:
        return
    raise UserError(
        f"serve-sql will not listen on {host} without authentication: anyone who can reach the "
        f"port could read every table the server can. Set sql_server.hive_conf."
        f"{AUTHENTICATION} to LDAP, KERBEROS or CUSTOM in conf/<env>.yaml (README, 'SQL for "
        "analysts'), or keep the default host 127.0.0.1"
    )


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Wait until `host:port` accepts connections; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@dataclass
class ThriftServer:
    """A running HiveServer2 on a session; `stop()` closes its port."""

    server: Any
    host: str
    port: int

    @property
    def jdbc_url(self) -> str:
        """The URL clients connect to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"jdbc:hive2://{host}:{self.port}/default"

    def stop(self) -> None:
        """Stop serving: the listening socket closes, client sessions end."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def start_thrift_server(
    spark: SparkSession,
    host: str,
    port: int,
    hive_conf: dict[str, Any] | None = None,
    *,
    timeout: float = 60.0,
) -> ThriftServer:
    """Start HiveServer2 on `spark` at `host:port` and wait until it accepts connections.

    Raises:
        UserError: a non-loopback bind without authentication.
        EnvironmentProblem: the port is taken, the session was built without the single
            shared session, or the server did not come up.
    """
    hive_conf = dict(hive_conf or {})
    check_bind(host, hive_conf)
    check_port_free(host, port)
    if (spark.conf.get(SINGLE_SESSION, "false") or "false").lower() != "true":
        raise EnvironmentProblem(
            f"the session was started without {SINGLE_SESSION}=true, so JDBC clients would not "
            "see the model functions; build it from spark_jobs.services.thrift_server."
            "server_settings(settings)"
        )
    for key, value in {**DEFAULT_HIVE_CONF, **hive_conf, BIND_HOST: host, PORT: port}.items():
        spark.conf.set(key, str(value).lower() if isinstance(value, bool) else str(value))
    _quiet_disconnect_errors(spark)
    server_class = getattr(jvm_of(spark), _SERVER_CLASS)
    server = server_class.startWithContext(spark._jsparkSession.sqlContext())
    if not wait_for_port(host, port, timeout):
        server.stop()
        raise EnvironmentProblem(
            f"the Thrift server did not accept connections on {host}:{port} within "
            f"{timeout:.0f} s; see the Spark log for HiveServer2 errors"
        )
    return ThriftServer(server=server, host=host, port=port)


def _quiet_disconnect_errors(spark: SparkSession) -> None:
    jvm = jvm_of(spark)
    level = jvm.org.apache.logging.log4j.Level.OFF
    for logger in _QUIET_LOGGERS:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(logger, level)
