"""The ``postgresql`` flavor: a PostgreSQL database (driver: psycopg 3)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from pipeledger.exceptions import StoreUnavailableError
from pipeledger.metadata_store.flavors.sql_flavor import ServerConfig, SqlFlavor
from pipeledger.metadata_store.sql import Database
from pipeledger.metadata_store.sql.engine import driver_message, json_dumps
from pipeledger.metadata_store.sql.statistics import PlannerStatistics

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgreSQLMetadataStoreConfig(ServerConfig):
    """Configuration of the ``postgresql`` flavor."""

    port: int = Field(5432, gt=0, lt=65536, description="TCP port of the server.")
    username: str = Field("postgres", min_length=1, description="User to connect as.")
    sslmode: SslMode = Field("prefer", description="libpq sslmode: disable ... verify-full.")
    sslrootcert: str | None = Field(None, description="Path of the CA certificate.")
    sslcert: str | None = Field(None, description="Path of the client certificate.")
    sslkey: str | None = Field(None, description="Path of the client certificate's key.")


class PostgreSQLMetadataStoreFlavor(SqlFlavor):
    """Metadata in a PostgreSQL database."""

    name = "postgresql"
    description = "Metadata in a PostgreSQL database server (>= 12). Suitable for production."
    config_class = PostgreSQLMetadataStoreConfig

    def database(self, component_name: str, config: Any, home: Path) -> Database:
        where = f"postgresql metadata store at {config.host}:{config.port}, database {config.database!r}"
        connect_args: dict[str, Any] = {
            "connect_timeout": max(2, config.connect_timeout),
            "sslmode": config.sslmode,
        }
        for key in ("sslrootcert", "sslcert", "sslkey"):
            if getattr(config, key):
                connect_args[key] = getattr(config, key)
        url = URL.create(
            "postgresql+psycopg",
            username=config.username,
            password=config.password_value(),
            host=config.host,
            port=config.port,
            database=config.database,
        )
        database = Database(
            url,
            display_name=where,
            connect_args=connect_args,
            engine_options={"json_serializer": jsonb_dumps},
            check_liveness=True,
        )
        try:
            database.check_connection()
        except StoreUnavailableError as exc:
            missing = "does not exist" in str(exc) and f'"{config.database}"' in str(exc)
            if not missing:
                raise
            if not config.create_database:
                raise StoreUnavailableError(
                    f"cannot connect to {where}: the database does not exist; create it or set create_database=true"
                ) from exc.__cause__
            _create_database(url, connect_args, where)
            database.check_connection()
        PlannerStatistics(database).install()  # statistics current after a bulk load, not a minute later
        return database


_STRING_OR_BIG_FLOAT = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?[eE]\+?\d+')


def jsonb_dumps(value: Any) -> str:
    """JSON text for a JSONB column, with floats like ``1e+23`` spelled out with a decimal point.

    JSONB stores numbers as ``numeric``, which gives ``1e+23`` back as ``100000000000000000000000``:
    an int, not the float that was stored. ``100000000000000000000000.0`` comes back a float.
    """
    text = json_dumps(value)
    if "e+" not in text and "E+" not in text:
        return text
    return _STRING_OR_BIG_FLOAT.sub(_spell_out, text)


def _spell_out(match: re.Match[str]) -> str:
    token = match.group()
    if token.startswith('"'):
        return token
    spelled = format(Decimal(token), "f")
    return spelled if "." in spelled else spelled + ".0"


def _create_database(url: URL, connect_args: dict[str, Any], where: str) -> None:
    server = create_engine(url.set(database="postgres"), connect_args=connect_args, isolation_level="AUTOCOMMIT")
    name = url.database or ""
    try:
        with server.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                conn.execute(text('CREATE DATABASE "{}"'.format(name.replace('"', '""'))))
    except sa_exc.DBAPIError as exc:
        raise StoreUnavailableError(f"cannot create the database of {where}: {driver_message(exc)}") from exc
    finally:
        server.dispose()
