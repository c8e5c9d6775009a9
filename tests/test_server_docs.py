"""The deployment examples of docs/server.md, checked without a cluster (a dry run): the
Kubernetes manifest parses, its server command is one the CLI accepts, its ports, probes, volumes
and secrets agree with each other and with the server's routes, and its stack configuration is
valid; the systemd unit's command is accepted by the CLI too."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from pipeledger.cli.server import start
from pipeledger.server.process import is_loopback
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager, validate_config

DOC = Path(__file__).resolve().parent.parent / "docs" / "server.md"


def block(language: str) -> str:
    (found,) = re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.S | re.M)
    return str(found)


def start_options(args: list[str]) -> dict[str, Any]:
    """The options ``pipeledger server start`` parses from ``args`` (refused ones raise)."""
    context = start.make_context("start", list(args))
    params = dict(context.params)
    if not is_loopback(params["host"]) and not params["insecure_no_auth"]:
        assert "pipeledger server init --stack " + str(params["stack"]) in DOC.read_text(), (
            "a non-loopback host is refused until `server init` ran: the docs must say to run it"
        )
    return params


def manifest() -> dict[str, dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(block("yaml")) if d]
    by_kind = {d["kind"]: d for d in documents}
    assert len(by_kind) == len(documents)
    return by_kind


def test_the_kubernetes_manifest_is_consistent() -> None:
    found = manifest()
    assert set(found) == {"Secret", "ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    pod = found["Deployment"]["spec"]["template"]
    assert found["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert found["Service"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (server,) = pod["spec"]["containers"]
    assert server["command"] == ["pipeledger"] and server["args"][:2] == ["server", "start"]
    options = start_options(server["args"][2:])
    port = options["port"]
    assert [p["containerPort"] for p in server["ports"]] == [port]
    assert [p["targetPort"] for p in found["Service"]["spec"]["ports"]] == [port]
    assert server["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port}
    assert server["livenessProbe"]["httpGet"] == {"path": "/health", "port": port}
    assert [p["port"] for rule in found["NetworkPolicy"]["spec"]["ingress"] for p in rule["ports"]] == [port]

    env = {e["name"]: e["value"] for e in server["env"]}
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert mounts[env["PIPELEDGER_HOME"]] in volumes
    (init,) = pod["spec"]["initContainers"]
    assert f"{env['PIPELEDGER_HOME']}/config.yaml" in init["command"][-1]
    assert volumes["config"]["configMap"]["name"] == found["ConfigMap"]["metadata"]["name"]

    config = yaml.safe_load(found["ConfigMap"]["data"]["config.yaml"])
    assert options["stack"] in config["stacks"]
    files = config["components"]["artifact_store"][config["stacks"][options["stack"]]["artifact_store"]]
    assert files["config"]["path"] in mounts
    secret_names = {s["secretRef"]["name"] for s in server["envFrom"]}
    assert found["Secret"]["metadata"]["name"] in secret_names
    referenced = re.findall(r"\$\{env:(\w+)\}", found["ConfigMap"]["data"]["config.yaml"])
    assert set(referenced) <= set(found["Secret"]["stringData"])


def test_the_manifest_stack_configuration_is_valid(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(manifest()["ConfigMap"]["data"]["config.yaml"])
    manager = StackManager(home)
    config = manager.store.load()
    entry = manager.get_stack_entry("served", config)
    for type_ in (ComponentType.METADATA_STORE, ComponentType.ARTIFACT_STORE):
        component = manager.get_component(type_, entry.component(type_), config)
        flavor = manager.flavors(config).get(type_, component.flavor)
        validate_config(flavor, entry.component(type_), component.config, home)
    assert manager.active_stack_name() == "served"


def test_the_systemd_unit_runs_an_accepted_loopback_server() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(block("ini"))
    command = shlex.split(unit["Service"]["ExecStart"])
    assert command[1:3] == ["server", "start"]
    options = start_options(command[3:])
    assert is_loopback(options["host"]) and not options["insecure_no_auth"]
    assert f"127.0.0.1:{options['port']}" in block("nginx")


def test_an_unknown_option_in_the_examples_would_be_caught() -> None:
    """The check above is real: the CLI refuses what it does not know."""
    try:
        start_options(["--listen", "0.0.0.0"])
    except click.UsageError:
        return
    raise AssertionError("an unknown option was accepted")
