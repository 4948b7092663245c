"""The optional nrpe-external-master relation on a booted unit, with Ubuntu's own
nagios-nrpe-server and check_nrpe: the charm's checks answer through NRPE as the nagios user,
OK while the collectors and pull are fine, WARNING naming a collector that keeps failing,
CRITICAL naming the endpoint's service when it is down. Before the relation nothing of it is
on the unit; once it is broken, nothing stays.

The nrpe subordinate charm is played by the test: it installs the packages as that charm's
install hook does, makes /var/lib/nagios/export, and joins the relation with the host name it
publishes. The container shares the host's network, so its NRPE listens on a free loopback
port instead of 5666.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from machine_deploy import CharmUnit, deployed_unit, serving_remote
from machine_harness import Result, _free_port, wait_for
from machine_trees import RAISES, push_tree, ticker
from metrics.testing import InfluxServer
from unit_agent import UNIT

CHECKS = ("ucm_collectors_stale", "ucm_collectors_failing", "ucm_pull")
PLUGIN = "/usr/local/lib/nagios/plugins/check_ucm"
NAGIOS_HOST = "juju-metrics-ubuntu-community-metrics-0"
OK, WARNING, CRITICAL = 0, 1, 2


def install_nrpe(unit: CharmUnit, port: int) -> None:
    """What the nrpe subordinate's install does, NRPE kept from starting until it has a port
    of its own (dpkg would start it on 5666, the host's)."""
    container = unit.container
    container.run(["sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d"])
    container.run(["chmod", "0755", "/usr/sbin/policy-rc.d"])
    container.run(["apt-get", "update", "-q"], timeout=600)
    container.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends",
         "nagios-nrpe-server", "nagios-nrpe-plugin", "monitoring-plugins-basic"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
        timeout=900,
    )  # fmt: skip
    container.run(["rm", "/usr/sbin/policy-rc.d"])
    container.run(["sed", "-i", f"s/^server_port=.*/server_port={port}/", "/etc/nagios/nrpe.cfg"])
    container.run(["mkdir", "-p", "/var/lib/nagios/export"])
    container.run(["chown", "nagios:nagios", "/var/lib/nagios/export"])
    container.run(["systemctl", "restart", "nagios-nrpe-server"])


def check_nrpe(unit: CharmUnit, port: int, command: str) -> Result:
    """Nagios's side: ask the unit's NRPE to run a command, as the Nagios server does."""
    return unit.container.run(
        ["/usr/lib/nagios/plugins/check_nrpe", "-H", "127.0.0.1", "-p", str(port),
         "-c", command],
        check=False,
    )  # fmt: skip


def exists(unit: CharmUnit, path: str) -> bool:
    return (unit.container.root / path.lstrip("/")).exists()


def test_nrpe_runs_the_checks_as_nagios_and_they_name_what_to_fix(
    machine_image: Path, charm: Path, influx: InfluxServer, tmp_path: Path
) -> None:
    with serving_remote(tmp_path / "remote") as remote:
        push_tree(remote, {"ticker": ticker("3s")}, message="one good collector")
        with deployed_unit(machine_image, charm, influx, remote) as unit:
            agent = unit.agent
            # Without the relation the charm writes nothing for Nagios, nor runs charmhelpers
            # (which asks `relation-set --help` first thing it writes).
            assert not exists(unit, PLUGIN)
            assert not [c for c in agent.calls() if c["argv"] == ["--help"]]

            port = _free_port()
            install_nrpe(unit, port)
            relation = agent.relate("nrpe-external-master", "nrpe")
            agent.join(
                relation,
                "nrpe/0",
                {"nagios_hostname": NAGIOS_HOST, "nagios_host_context": "juju-metrics"},
            )

            # What charmhelpers' NRPE wrote: one NRPE command per check, running the plugin
            # against the endpoint; the services the subordinate exports to Nagios; and the
            # relation data it reads.
            for name in CHECKS:
                kind = name.rsplit("_", 1)[-1]
                command = (unit.container.root / f"etc/nagios/nrpe.d/check_{name}.cfg").read_text()
                assert (
                    f"command[check_{name}]={PLUGIN} {kind} --url {unit.metrics_url}"
                    f" --unit {UNIT}\n"
                ) in command, command
                service = (
                    unit.container.root
                    / f"var/lib/nagios/export/service__{NAGIOS_HOST}_check_{name}.cfg"
                ).read_text()
                assert f"service_description             {NAGIOS_HOST}[{name}] " in service
                assert f"check_command                   check_nrpe!check_{name}" in service
            data = agent.model["relations"][-1]["local_unit_data"]
            assert data["primary"] == "True"
            assert yaml.safe_load(data["monitors"]) == {
                "monitors": {
                    "remote": {"nrpe": {name: {"command": f"check_{name}"} for name in CHECKS}}
                }
            }
            assert unit.container.run(["stat", "-c", "%U %a", PLUGIN]).stdout == "root 755\n"

            # All well: every check answers OK through NRPE (run as nagios).
            wait_for(
                "ticker to succeed",
                lambda: check_nrpe(unit, port, "check_ucm_collectors_failing").returncode == OK,
            )
            for name in CHECKS:
                answer = check_nrpe(unit, port, f"check_{name}")
                assert answer.returncode == OK, answer
                assert answer.stdout.startswith("UCM "), answer

            # A collector that fails every run: the failing check names it and its fixes.
            push_tree(
                remote,
                {"ticker": ticker("3s"), "raises": RAISES},
                message="a collector that fails",
            )
            agent.run_action("pull")
            failing = wait_for(
                "the failing check to warn about raises",
                lambda: (
                    answer
                    if (
                        answer := check_nrpe(unit, port, "check_ucm_collectors_failing")
                    ).returncode
                    == WARNING
                    else None
                ),
                timeout=90,
            )
            assert isinstance(failing, Result)
            assert "UCM FAILING WARNING: 1 of 2 collectors failed their last runs: raises (" in (
                failing.stdout
            ), failing
            assert "journalctl -u metrics-collector@raises.service -n 50" in failing.stdout
            assert f"juju run {UNIT} run-collector name=raises dry-run=true" in failing.stdout
            assert check_nrpe(unit, port, "check_ucm_pull").returncode == OK

            # Another metrics-port: config-changed points the checks at it.
            metrics_port = _free_port()
            agent.configure(metrics_port=metrics_port)
            command = (unit.container.root / "etc/nagios/nrpe.d/check_ucm_pull.cfg").read_text()
            assert f"--url http://127.0.0.1:{metrics_port}/metrics" in command
            wait_for(
                "the pull check on the new port",
                lambda: check_nrpe(unit, port, "check_ucm_pull").returncode == OK,
            )

            # The endpoint down: CRITICAL, naming its service.
            unit.container.run(["systemctl", "stop", "metrics-exporter.service"])
            down = check_nrpe(unit, port, "check_ucm_collectors_stale")
            assert down.returncode == CRITICAL, down
            assert "systemctl status metrics-exporter.service" in down.stdout
            unit.container.run(["systemctl", "start", "metrics-exporter.service"])

            # Broken: the checks and the plugin leave with the relation.
            agent.depart(relation, "nrpe/0")
            agent.break_relation(relation)
            for name in CHECKS:
                assert not exists(unit, f"/etc/nagios/nrpe.d/check_{name}.cfg")
                assert not exists(
                    unit, f"/var/lib/nagios/export/service__{NAGIOS_HOST}_check_{name}.cfg"
                )
            assert not exists(unit, PLUGIN)
            assert unit.agent.status["status"] == "active", unit.agent.status
