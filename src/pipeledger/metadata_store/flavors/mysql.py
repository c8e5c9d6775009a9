"""The ``mysql`` flavor: any MySQL-compatible server (MySQL >= 8, MariaDB >= 10.6).

Driver: **PyMySQL**, pure Python, so it installs on every platform and Python
version without a compiler or client libraries (the original MLMD-based stores
failed to install exactly there); its speed is not the bottleneck of per-step
transactions. Tables use ``utf8mb4`` with binary collation (exact, case-sensitive
names) and InnoDB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from pipeledger.exceptions import StoreUnavailableError
from pipeledger.metadata_store.flavors.sql_flavor import ServerConfig, SqlFlavor
from pipeledger.metadata_store.sql import Database
from pipeledger.metadata_store.sql.engine import driver_message

_DATABASE_NAME = r"^[A-Za-z0-9_$-]+$"


class MySQLMetadataStoreConfig(ServerConfig):
    """Configuration of the ``mysql`` flavor."""

    port: int = Field(3306, gt=0, lt=65536, description="TCP port of the server.")
    database: str = Field(..., pattern=_DATABASE_NAME, max_length=64, description="Database name.")
    username: str = Field("root", min_length=1, description="User to connect as.")
    ssl_ca: str | None = Field(None, description="Path of the CA certificate (enables TLS).")
    ssl_cert: str | None = Field(None, description="Path of the client certificate.")
    ssl_key: str | None = Field(None, description="Path of the client certificate's key.")
    ssl_verify_server_cert: bool = Field(
        True, description="Check the server certificate and host name (when TLS is on)."
    )


class MySQLMetadataStoreFlavor(SqlFlavor):
    """Metadata in a MySQL or MariaDB database."""

    name = "mysql"
    description = (
        "Metadata in a MySQL-compatible database server (MySQL >= 8, MariaDB >= 10.6). "
        "Recommended for most production settings."
    )
    config_class = MySQLMetadataStoreConfig

    def database(self, component_name: str, config: Any, home: Path) -> Database:
        where = f"mysql metadata store at {config.host}:{config.port}, database {config.database!r}"
        connect_args = _connect_args(config)
        url = URL.create(
            "mysql+pymysql",
            username=config.username,
            password=config.password_value(),
            host=config.host,
            port=config.port,
            database=config.database,
            query={"charset": "utf8mb4"},
        )
        # PyMySQL's connect_timeout covers only the TCP connect; the handshake waits for
        # read_timeout. Probe with every timeout at connect_timeout, so that a server that
        # accepts connections but never answers fails fast too.
        quick = {
            **connect_args,
            "read_timeout": config.connect_timeout,
            "write_timeout": config.connect_timeout,
        }
        probe = Database(url, display_name=where, connect_args=quick, engine_options={"poolclass": NullPool})
        try:
            probe.check_connection()
        except StoreUnavailableError as exc:
            if not _unknown_database(exc):
                raise
            if not config.create_database:
                raise StoreUnavailableError(
                    f"cannot connect to {where}: the database does not exist; create it or set create_database=true"
                ) from exc.__cause__
            _create_database(url, quick, where)
        finally:
            probe.dispose()
        database = Database(
            url,
            display_name=where,
            connect_args=connect_args,
            engine_options={"pool_recycle": 3600},
            check_liveness=True,
        )
        database.check_connection()
        return database


def _connect_args(config: MySQLMetadataStoreConfig) -> dict[str, Any]:
    args: dict[str, Any] = {
        "connect_timeout": config.connect_timeout,
        "read_timeout": max(config.connect_timeout, 60),
        "write_timeout": max(config.connect_timeout, 60),
    }
    if config.ssl_ca or config.ssl_cert or config.ssl_key:
        args.update(
            ssl_ca=config.ssl_ca,
            ssl_cert=config.ssl_cert,
            ssl_key=config.ssl_key,
            ssl_verify_cert=config.ssl_verify_server_cert,
            ssl_verify_identity=config.ssl_verify_server_cert,
        )
    return args


def _unknown_database(exc: StoreUnavailableError) -> bool:
    cause = exc.__cause__
    orig = getattr(cause, "orig", None)
    return bool(orig is not None and getattr(orig, "args", (None,))[0] == 1049)


def _create_database(url: URL, connect_args: dict[str, Any], where: str) -> None:
    server_url = URL.create(
        url.drivername, url.username, url.password, url.host, url.port, database=None, query=url.query
    )
    server = create_engine(server_url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(
                text(f"CREATE DATABASE IF NOT EXISTS `{url.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            )
    except sa_exc.DBAPIError as exc:
        raise StoreUnavailableError(f"cannot create the database of {where}: {driver_message(exc)}") from exc
    finally:
        server.dispose()
