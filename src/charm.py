#!/usr/bin/env python3
"""Juju glue of ubuntu-community-metrics: every hook converges the unit through one reconcile.

Juju facts (config, the influxdb relation, the credentials secret, the model's proxy) become
`workload.Settings` and `workload.InfluxCredentials`; `workload` does everything on the
machine. The unit status is computed in `collect_unit_status` from what the last reconcile
found, each non-active status naming the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

import ops

import nrpe
import workload
from cos_agent import RELATION as COS_AGENT
from cos_agent import CosAgentProvider
from workload.systemd import SystemctlError

logger = logging.getLogger(__name__)

RELATION = "influxdb"
PEERS = "cluster"
# Keys of the influxdb-api interface, set by each InfluxDB unit in its own data bag.
RELATION_KEYS = ("hostname", "port", "user", "password")
SECRET_KEYS = ("host", "port", "username", "password", "database")
# Optional in the secret and in each InfluxDB unit's relation data: the PEM certificate(s) of
# the private CA that signed InfluxDB's certificate; it implies https.
CA_CERT_KEY = "ca-cert"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CharmConfig:
    """The options of config.yaml; `workload.Settings.problems()` and
    `workload.check_influxdb` say what is wrong with their values."""

    collectors_repo: str = ""
    collectors_branch: str = "main"
    collectors_path: str = "collectors"
    collectors_revision: str = ""
    pull_interval: str = "1h"
    collector_timeout: str = "10m"
    dry_run: bool = False
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""
    influxdb_database: str = "metrics"
    extra_packages: str = ""
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9581
    nagios_context: str = "juju"
    nagios_servicegroups: str = ""
    influxdb_secret: ops.Secret | None = None


class CredentialsProblem(Exception):
    """The InfluxDB credentials cannot be read; `status` says what is wrong and what to do."""

    def __init__(self, status: ops.StatusBase):
        super().__init__(status.message)
        self.status = status


class UbuntuCommunityMetricsCharm(ops.CharmBase):
    """Runs the collectors tree as one systemd timer per collector."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # What the reconcile of this dispatch found, for collect_unit_status; None when this
        # dispatch did not reconcile (an action), which leaves the status as it was.
        self._statuses: list[ops.StatusBase] | None = None
        self._cos_agent = CosAgentProvider(self, metrics_endpoint=self._metrics_endpoint)
        observe = framework.observe
        for event in (
            self.on.install,
            self.on.start,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.update_status,
            self.on.secret_changed,
            self.on[RELATION].relation_joined,
            self.on[RELATION].relation_changed,
            self.on[RELATION].relation_departed,
            self.on[RELATION].relation_broken,
            self.on[PEERS].relation_joined,
            self.on[PEERS].relation_departed,
            # The collectors' log file exists only while cos-agent does.
            self.on[COS_AGENT].relation_created,
            self.on[COS_AGENT].relation_broken,
        ):
            observe(event, self._on_reconcile_event)
        # Nagios checks, only while the optional nrpe-external-master relation exists.
        for event in (
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on[nrpe.RELATION].relation_joined,
            self.on[nrpe.RELATION].relation_changed,
        ):
            observe(event, self._on_nrpe_event)
        observe(self.on[nrpe.RELATION].relation_broken, self._on_nrpe_relation_broken)
        observe(self.on.remove, self._on_remove)
        observe(self.on.collect_unit_status, self._on_collect_unit_status)
        observe(self.on.list_collectors_action, self._on_list_collectors_action)
        observe(self.on.run_collector_action, self._on_run_collector_action)
        observe(self.on.pull_action, self._on_pull_action)

    # Events

    def _on_reconcile_event(self, event: ops.EventBase) -> None:
        if isinstance(event, ops.InstallEvent):
            # The first checkout and venv take a while: say so until collect-status replaces it.
            self.unit.status = ops.MaintenanceStatus("checking out the collectors tree")
        departing = event.departing_unit if isinstance(event, ops.RelationDepartedEvent) else None
        self._reconcile(departing=departing)

    def _on_nrpe_event(self, _: ops.EventBase) -> None:
        if self.model.get_relation(nrpe.RELATION) is None:
            return
        config = self.load_config(CharmConfig)
        nrpe.update_checks(
            nrpe.Settings(
                address=config.metrics_address,
                port=config.metrics_port,
                unit=self.unit.name,
                context=config.nagios_context,
                servicegroups=config.nagios_servicegroups,
            )
        )

    def _on_nrpe_relation_broken(self, _: ops.RelationBrokenEvent) -> None:
        nrpe.remove_checks()

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        workload.remove()

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        for status in self._statuses or []:
            # Names and errors come from the collectors branch: no forged lines or escapes.
            event.add_status(type(status)(_bounded(_printable(status.message))))

    # Actions

    def _on_list_collectors_action(self, event: ops.ActionEvent) -> None:
        try:
            collectors = workload.list_collectors()
        except SystemctlError as error:
            event.fail(f"cannot ask systemd about the collectors: {error}")
            return
        except workload.DiscoveryError as error:
            event.fail(str(error))
            return
        rows = [("NAME", "INTERVAL", "OWNER", "LAST-RESULT", "LAST-RUN", "NEXT-RUN", "PROBLEM")]
        rows += [
            (
                _printable(c.name),
                c.interval,
                _show(c.owner),
                _show(c.last_result),
                _show(c.last_run),
                _show(c.next_run),
                _printable(c.problem or "-"),
            )
            for c in collectors
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
            + "  "
            + row[-1]
            for row in rows
        ]
        event.set_results({"count": str(len(collectors)), "collectors": "\n".join(lines)})

    def _on_run_collector_action(self, event: ops.ActionEvent) -> None:
        name = str(event.params["name"])
        dry_run = bool(event.params.get("dry-run", False)) or self.load_config(CharmConfig).dry_run
        try:
            result = workload.run_collector(name, dry_run=dry_run)
        except ValueError as error:  # not a schedulable collector: the message names those
            event.fail(f"{error} (see list-collectors)")
            return
        except (SystemctlError, workload.DiscoveryError) as error:
            event.fail(f"cannot run collector {name}: {error}")
            return
        event.set_results(
            {
                "exit-status": str(result.exit_status),
                "dry-run": str(dry_run).lower(),
                "log-tail": self._redact(result.log_tail) or "(no output)",
            }
        )
        if result.exit_status != 0:
            event.fail(f"collector {name} exited with status {result.exit_status}: see log-tail")

    def _on_pull_action(self, event: ops.ActionEvent) -> None:
        if not self.load_config(CharmConfig).collectors_repo:
            event.fail(
                "collectors-repo is empty, so the tree bundled in the charm runs and there is "
                "nothing to pull: set collectors-repo to follow a branch"
            )
            return
        result = workload.sync()
        event.set_results(
            {
                "old-commit": result.old_commit or "none",
                "new-commit": result.new_commit or "none",
                "added": ", ".join(result.added) or "none",
                "removed": ", ".join(result.removed) or "none",
            }
        )
        # Show the new tree (or the pull failure) in the status at once, not at the next hook.
        self._reconcile()
        if result.problems:
            event.fail(self._redact("; ".join(result.problems)))

    # Reconcile

    def _reconcile(self, *, departing: ops.Unit | None = None) -> None:
        """Converge the unit to the config, relation and secret; keep what to report."""
        config = self.load_config(CharmConfig)
        statuses: list[ops.StatusBase] = []
        extra, extra_problem = workload.extra_packages(config.extra_packages)
        if extra_problem:
            statuses.append(ops.BlockedStatus(extra_problem))
        try:
            # Cheap when all is there (one dpkg-query), so a failed apt run heals by itself.
            workload.ensure_packages([*workload.PACKAGES, *extra])
        except workload.PackagesError as error:
            statuses.append(ops.BlockedStatus(str(error)))
        try:
            if departing is not None and departing == self.unit:
                # This unit is being removed: its relations depart in any order, and the
                # remove hook still needs the credentials to write the collectors' spools.
                credentials = workload.saved_credentials()
            else:
                credentials = self._influx_credentials(config, departing=departing)
        except CredentialsProblem as problem:
            credentials = None
            statuses.append(problem.status)
        settings = self._settings(config, departing=departing)
        report = workload.reconcile(settings, credentials)
        self.unit.set_ports(
            *([config.metrics_port] if settings.metrics_beyond_this_machine else [])
        )
        if report.commit:
            # `juju status` shows it as the unit's version: which tree the collectors run.
            self.unit.set_workload_version(_short_commit(report.commit))
        if credentials is not None:
            influx_problem = workload.check_influxdb(credentials)
            if influx_problem:
                statuses.append(ops.BlockedStatus(self._redact(influx_problem, credentials)))
        statuses += [ops.BlockedStatus(problem) for problem in report.problems]
        statuses.append(ops.ActiveStatus(_active_message(report, dry_run=config.dry_run)))
        self._statuses = statuses

    def _settings(
        self, config: CharmConfig, *, departing: ops.Unit | None = None
    ) -> workload.Settings:
        proxy = workload.Proxy(
            http=config.http_proxy or os.environ.get("JUJU_CHARM_HTTP_PROXY", ""),
            https=config.https_proxy or os.environ.get("JUJU_CHARM_HTTPS_PROXY", ""),
            no_proxy=config.no_proxy or os.environ.get("JUJU_CHARM_NO_PROXY", ""),
        )
        return workload.Settings(
            repo=config.collectors_repo,
            branch=config.collectors_branch,
            path=config.collectors_path,
            revision=config.collectors_revision,
            pull_interval=config.pull_interval,
            collector_timeout=config.collector_timeout,
            dry_run=config.dry_run,
            proxy=proxy,
            bundled_tree=self.charm_dir / "collectors",
            metrics_address=config.metrics_address,
            metrics_port=config.metrics_port,
            unit=self.unit.name,
            peers=self._peers(departing),
            leaving=departing == self.unit,
            log_file=self._cos_agent.related,
        )

    def _peers(self, departing: ops.Unit | None) -> tuple[str, ...]:
        """The application's other units, which share the collectors with this one. Every unit
        computes the owners itself from this list (workload.ownership): no leader is needed."""
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return ()
        return tuple(sorted(unit.name for unit in relation.units if unit != departing))

    def _metrics_endpoint(self) -> tuple[str, int]:
        config = self.load_config(CharmConfig)
        return config.metrics_address, config.metrics_port

    def _influx_credentials(
        self, config: CharmConfig, *, departing: ops.Unit | None = None
    ) -> workload.InfluxCredentials:
        """Credentials from influxdb-secret when set, else from the influxdb relation.

        The secret wins over the relation: setting it is an explicit choice of an InfluxDB
        outside the model, and a relation left in place must not silently redirect writes.
        """
        if config.influxdb_secret is not None:
            if self.model.get_relation(RELATION) is not None:
                logger.warning("influxdb-secret is set: using it, not the influxdb relation")
            return self._credentials_from_secret(config.influxdb_secret)
        relation = self.model.get_relation(RELATION)
        if relation is None:
            raise CredentialsProblem(
                ops.BlockedStatus(
                    "no InfluxDB credentials: integrate with influxdb or set influxdb-secret"
                )
            )
        return self._credentials_from_relation(relation, config, departing=departing)

    def _credentials_from_secret(self, secret: ops.Secret) -> workload.InfluxCredentials:
        uri = secret.id or "<secret-uri>"
        try:
            content = secret.get_content(refresh=True)
        except ops.ModelError:
            # Juju answers "not found" or "permission denied": either way, grant it.
            raise CredentialsProblem(
                ops.BlockedStatus(
                    f"cannot read influxdb-secret {uri} (not granted, or removed): "
                    f"juju grant-secret {uri} {self.app.name}"
                )
            ) from None
        # `juju update-secret` replaces the whole content, so the fix is always a full file.
        update = f"juju update-secret {uri} --file <credentials.yaml>"
        missing = [key for key in SECRET_KEYS if not content.get(key)]
        if missing:
            raise CredentialsProblem(
                ops.BlockedStatus(
                    f"influxdb-secret {uri} lacks {', '.join(missing)}: update it with keys "
                    f"{', '.join(SECRET_KEYS)} and optionally ssl, {CA_CERT_KEY} ({update})"
                )
            )
        # A field's value is never shown: a password pasted into the wrong key would be.
        port = _port(content["port"])
        if port is None:
            raise CredentialsProblem(
                ops.BlockedStatus(
                    f"influxdb-secret {uri} has a port that is not a port number (1-65535): "
                    f"update it with the port InfluxDB listens on ({update})"
                )
            )
        ca_cert = _ca_cert(content)
        ssl = content.get("ssl", "true" if ca_cert else "false").strip().lower()
        if ssl not in ("true", "false"):
            raise CredentialsProblem(
                ops.BlockedStatus(
                    f"influxdb-secret {uri} has an ssl value that is not true or false: "
                    f"update it ({update})"
                )
            )
        if ca_cert:
            if ssl == "false":
                raise CredentialsProblem(
                    ops.BlockedStatus(
                        f"influxdb-secret {uri} has ssl false and a {CA_CERT_KEY}, which is "
                        f"only used over https: set ssl to true (or remove it), or remove "
                        f"{CA_CERT_KEY} ({update})"
                    )
                )
            ca_problem = workload.ca_cert_problem(ca_cert)
            if ca_problem:
                raise CredentialsProblem(
                    ops.BlockedStatus(
                        f"influxdb-secret {uri} has a {CA_CERT_KEY} that {ca_problem}: update "
                        f"it with the PEM certificate of the CA that signed InfluxDB's "
                        f"certificate ({update})"
                    )
                )
        return workload.InfluxCredentials(
            host=content["host"],
            port=port,
            username=content["username"],
            password=content["password"],
            database=content["database"],
            ssl=ssl == "true",
            ca_cert=ca_cert,
        )

    def _credentials_from_relation(
        self, relation: ops.Relation, config: CharmConfig, *, departing: ops.Unit | None
    ) -> workload.InfluxCredentials:
        units = sorted(
            (unit for unit in relation.units if unit != departing), key=lambda u: u.name
        )
        for unit in units:
            data = relation.data[unit]
            if not all(data.get(key) for key in RELATION_KEYS):
                continue
            port = _port(data["port"])
            if port is None:
                raise CredentialsProblem(
                    ops.BlockedStatus(
                        f"{unit.name} sent port {data['port']!r} on the influxdb relation, "
                        f"not a port number: fix the {relation.app.name} application"
                    )
                )
            ca_cert = _ca_cert(data)
            ca_problem = workload.ca_cert_problem(ca_cert) if ca_cert else None
            if ca_problem:
                raise CredentialsProblem(
                    ops.BlockedStatus(
                        f"{unit.name} sent a {CA_CERT_KEY} that {ca_problem} on the influxdb "
                        f"relation: fix the {relation.app.name} application"
                    )
                )
            # The interface has no ssl key: a CA certificate is only sent for https.
            return workload.InfluxCredentials(
                host=data["hostname"],
                port=port,
                username=data["user"],
                password=data["password"],
                database=config.influxdb_database,
                ssl=bool(ca_cert),
                ca_cert=ca_cert,
            )
        if not units:
            raise CredentialsProblem(
                ops.WaitingStatus(
                    f"waiting for a unit of {relation.app.name} to join the relation"
                )
            )
        raise CredentialsProblem(
            ops.WaitingStatus(
                f"waiting for {relation.app.name} to publish {', '.join(RELATION_KEYS)} "
                "on the influxdb relation"
            )
        )

    # Helpers

    def _redact(self, text: str, credentials: workload.InfluxCredentials | None = None) -> str:
        """`text` with the InfluxDB password masked: collectors' output is not ours to trust."""
        if credentials is None:
            try:
                credentials = self._influx_credentials(self.load_config(CharmConfig))
            except CredentialsProblem:
                return text
        if not credentials.password:
            return text
        return text.replace(credentials.password, "********")


def _port(text: str) -> int | None:
    """`text` as a TCP port number, or None."""
    value = text.strip()
    if not value.isdecimal() or not 0 < int(value) < 65536:
        return None
    return int(value)


def _ca_cert(data: Mapping[str, str]) -> str:
    """The optional CA certificate of a secret's content or a relation unit's data, with the
    blank lines around it dropped ("" when absent or blank)."""
    text = data.get(CA_CERT_KEY, "").strip()
    return text + "\n" if text else ""


def _short_commit(commit: str) -> str:
    """A git commit id shortened as `git log --oneline` would; other ids (the bundled tree's
    `bundled-<hash>`) are short already."""
    is_git_id = len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)
    return commit[:12] if is_git_id else commit


def _show(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _active_message(report: workload.Report, *, dry_run: bool) -> str:
    count = len(report.scheduled)
    if report.of_application is None:
        parts = [f"{count} collector{'' if count == 1 else 's'} scheduled"]
    else:
        parts = [f"{count} of {report.of_application} collectors on this unit"]
    if dry_run:
        parts.append("dry-run: nothing written")
    if report.skipped:
        names = _some([c.name for c in report.skipped])
        parts.append(f"skipped: {names} (see list-collectors)")
    if report.failing:
        parts.append(f"failing: {_some(report.failing)} (see run-collector)")
    return "; ".join(parts)


# Names shown in the status before "and N more"; `juju status` shows one line per unit.
STATUS_NAMES = 5
STATUS_LENGTH = 480


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:STATUS_NAMES])
    more = len(names) - STATUS_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped as \\xNN / \\uNNNN."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _bounded(text: str) -> str:
    if len(text) <= STATUS_LENGTH:
        return text
    return text[: STATUS_LENGTH - 40] + " ... (cut: see list-collectors and the log)"


if __name__ == "__main__":  # pragma: nocover
    ops.main(UbuntuCommunityMetricsCharm)
