"""From a scenario to migrations: which agent, which ports, which spec.

The orchestrator knows the scenario and one `Site` per MEC site; it deploys instances at their
home site and migrates them with the engine, asking the controller (if any) for reservations and
the traffic switch. Port numbers: at its home site an instance takes the port the topology model
gave it; at any other site it takes GUEST_PORT_BASE + its index in the scenario, a port no link or
declared host uses. An instance's `user` and `groups` are resolved here, against this host's
/etc/passwd and /etc/group (ground.users; every site's instances see their host's /etc, which
must agree), so that its spec carries numbers, the same at every site.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ground.defaults import (
    DEFAULT_STRATEGY,
    DOWNTIME_BUDGET_MS,
    HOLD_MODE,
    MIGRATION_PORT,
    MIGRATION_RATE_BPS,
    PAGE_SERVER_PORT,
)
from ground.instance_fs import DEFAULT_WORKDIR
from ground.rootfs_image import ImageConfig
from ground.users import ROOT, Accounts, Identity, UnknownAccount
from migration.engine import Migration, Plan
from migration.network import ControllerLink, RelocationIncomplete, WithoutReservations
from migration.site import (
    CommandInvalid,
    FreshStart,
    InstanceSpec,
    Site,
    SiteError,
    SiteUnreachable,
    check_command,
)
from migration.strategies import strategy as strategy_named
from migration.timeline import Listener, MigrationRecord
from orchestration.ids import new_migration_id
from orchestration.instance_images import HowToRun, ImageSupply, ImageUnusable, Sent
from orchestration.placement import InstanceStatus, LastMigration, Placement, StopReport
from orchestration.standby_link import StandbyLink, StandbyRefused
from topology.scenario import InstanceSpec as ScenarioInstance
from topology.scenario import Scenario
from topology.world import topology_from_scenario
from workloads import WORKLOADS, workload_path

log = logging.getLogger(__name__)
GUEST_PORT_BASE = 100


class OrchestratorError(Exception):
    """A request the orchestrator cannot carry out (unknown instance or site, nothing running)."""


class UnknownName(OrchestratorError):
    """No instance, site or strategy of that name (the message lists the known ones)."""


class NotServing(OrchestratorError):
    """The instance runs nowhere reachable, or already where it should go."""


class UnknownAccountName(OrchestratorError):
    """An instance's user or group that this host's /etc/passwd or /etc/group does not hold."""


class SitesUnreachable(OrchestratorError):
    """Agents that do not answer, so where the instance runs cannot be told. `everywhere`: not
    one site's agent answered (the environment is not ready, rather than one site down)."""

    def __init__(self, message: str, *, everywhere: bool = False) -> None:
        super().__init__(message)
        self.everywhere = everywhere


class BadImage(OrchestratorError):
    """An instance's image cannot be used (missing, not an image, no command to run)."""


class CommandRefused(OrchestratorError):
    """A migration's start command that cannot be taken: a strategy that keeps the
    configuration given one, one that does not given none where the image has none, or a
    malformed one. Refused before anything of the service changed (a 4xx, not a rollback)."""


class ImageNotSent(OrchestratorError):
    """The destination could not take the instance's image; nothing of the service changed."""


class AlreadyDeployed(OrchestratorError):
    """The instance runs at a site already, or a site holds a copy of it: deploying it again
    would make two (the message says where, and in what state)."""


class NotStateless(OrchestratorError):
    """A replica asked of an instance that is not `stateless: true`: two copies of a stateful
    one would diverge."""


class Orchestrator:
    """Deploys and migrates the scenario's instances through the sites' agents."""

    def __init__(
        self,
        scenario: Scenario,
        sites: Mapping[str, Site],
        network: ControllerLink | None = None,
        dirty_tracking: bool = False,
        accounts: Accounts | None = None,
    ) -> None:
        self.sc = scenario
        self.sites = dict(sites)
        self.network = network
        self.dirty_tracking = dirty_tracking
        self.model = topology_from_scenario(scenario)
        self._accounts = accounts  # None: this host's /etc, read when an instance names a user
        self.images = ImageSupply()

    def identity(self, instance: str) -> Identity:
        """The uid, gid and supplementary gids `instance` runs as (root unless it says)."""
        inst = self.sc.instance(instance)
        user = self._how(inst).user
        if user is None and not inst.groups:
            return ROOT
        try:
            accounts = self.images.accounts(inst)
            if accounts is not None:
                return accounts.resolve(user, inst.groups)
            if self._accounts is None:
                self._accounts = Accounts.of_host()
            return self._accounts.resolve(user, inst.groups)
        except (UnknownAccount, ValueError, OSError) as exc:
            where = (
                f"its image's /etc ({inst.image})"
                if inst.image is not None
                else "this host's /etc, which every site's instances see as their own"
            )
            raise UnknownAccountName(
                f"{instance}: {exc} (names are resolved against {where})"
            ) from exc

    def _how(self, inst: ScenarioInstance) -> HowToRun:
        try:
            return self.images.how_to_run(inst)
        except ImageUnusable as exc:
            raise BadImage(str(exc)) from None

    def ensure_image(self, instance: str, site: str) -> Sent | None:
        """Send `instance`'s image to `site` unless it has it (None: it runs no image)."""
        try:
            return self.images.ensure(self.sc.instance(instance), self.site(site))
        except ImageUnusable as exc:
            raise BadImage(str(exc)) from None

    def port_at(self, instance: str, site: str) -> int:
        """The switch port `instance` takes at `site` (see the module docstring)."""
        spec = self.sc.instance(instance)
        if spec.site == site:
            return self.model.attachment(instance).port
        return GUEST_PORT_BASE + [i.name for i in self.sc.instances].index(instance)

    def migration_ports(self, instance: str) -> tuple[int, int]:
        """The ports of `instance`'s copy and of its post-copy pages: a pair of its own (the
        first instance's are the agents' defaults), so that migrations of several instances
        between the same sites (a chain's functions) run at once."""
        index = [i.name for i in self.sc.instances].index(instance)
        return MIGRATION_PORT + 2 * index, PAGE_SERVER_PORT + 2 * index

    def spec_at(self, instance: str, site: str) -> InstanceSpec:
        """The runtime spec of `instance` when it runs at `site`."""
        try:
            inst = self.sc.instance(instance)
        except KeyError as exc:
            raise UnknownName(str(exc.args[0])) from exc
        files = {
            f"{w}.py": str(workload_path(w)) for w in WORKLOADS if f"/data/{w}.py" in inst.command
        }
        identity = self.identity(instance)
        how = self._how(inst)
        image = self.images.of(inst)
        return InstanceSpec(
            name=instance,
            args=how.args,
            ip=str(inst.ip),
            prefix=self.sc.network.subnet.prefixlen,
            mac=self.sc.mac_of(instance),
            port=self.port_at(instance, site),
            files=files,
            volume=inst.volume,
            uid=identity.uid,
            gid=identity.gid,
            groups=identity.groups,
            capabilities=inst.capabilities,
            state=inst.state,
            env=how.env,
            workdir=how.workdir,
            ports=inst.ports,
            health=inst.health,
            start_timeout_s=inst.start_timeout,
            image=image.digest if image is not None else None,
        )

    def fresh_start(self, instance: str, command: Sequence[str] | None = None) -> FreshStart:
        """How `instance` starts at a destination that does not get its configuration
        (strategy `filesystem`, seed 003's SFP): `command` if given, else its image's command,
        with only its image's environment, working directory and user (root without one).
        CommandRefused when neither gives a command (a scenario's `command:` is configuration:
        it stays behind) or `command` is malformed."""
        inst = self.instance(instance)
        words = _checked_command(command)
        try:
            image = self.images.of(inst)
            config = image.config if image is not None else ImageConfig()
            args = words or config.command
            if not args:
                what = f"its image {inst.image} names none" if image else "it runs no image"
                raise CommandRefused(
                    f"{instance}: strategy filesystem starts it afresh without its "
                    f"configuration, and {what}: give the command to start it with"
                )
            identity = ROOT
            if config.user is not None:
                accounts = self.images.accounts(inst) or Accounts.parse("", "")
                identity = accounts.resolve(config.user)
        except (ImageUnusable, UnknownAccount, ValueError) as exc:
            if isinstance(exc, CommandRefused):
                raise
            raise BadImage(f"{instance}: {exc}") from None
        return FreshStart(
            args=args, env=config.env, workdir=config.workdir or DEFAULT_WORKDIR,
            uid=identity.uid, gid=identity.gid, groups=identity.groups, manual=bool(words),
        )  # fmt: skip

    def site(self, name: str) -> Site:
        if name not in self.sites:
            raise UnknownName(f"no agent for site {name!r} (known: {', '.join(self.sites)})")
        return self.sites[name]

    def where(self, instance: str) -> str | None:
        """The site where `instance` runs now, or None. If it runs at no site that answered
        and some did not, SitesUnreachable names them and why (an agent down, a wrong endpoint).
        A stateless service with warm replicas runs at several sites: where is its primary (the
        one that is not a standby at the controller)."""
        unreachable: list[str] = []
        running: list[str] = []
        for name, site in self.sites.items():
            try:
                if site.status(instance) == "running":
                    running.append(name)
                    if not self.instance(instance).stateless:
                        return name
            except SiteUnreachable as exc:
                unreachable.append(str(exc))
        if len(running) > 1:
            standbys = set(self._standby_sites(instance))
            return next((s for s in running if s not in standbys), running[0])
        if running:
            return running[0]
        if unreachable:
            raise SitesUnreachable(
                f"{instance} runs at no site that answered; unreachable: " + "; ".join(unreachable)
            )
        return None

    def instance(self, name: str) -> ScenarioInstance:
        """The scenario's instance called `name` (UnknownName, listing them, if none)."""
        try:
            return self.sc.instance(name)
        except KeyError as exc:
            known = ", ".join(i.name for i in self.sc.instances)
            raise UnknownName(
                f"{exc.args[0]} in scenario {self.sc.name} (instances: {known})"
            ) from exc

    def placement(self, instance: str, down: dict[str, str] | None = None) -> Placement:
        """What every site holds of `instance`. `down`: sites found unreachable so far, not
        asked again (those found now are added): one timeout per dead agent, not per instance."""
        self.instance(instance)
        down = {} if down is None else down
        at: dict[str, str] = {}
        errors: dict[str, str] = {}
        for name, site in self.sites.items():
            if name in down:
                errors[name] = down[name]
                continue
            try:
                at[name] = site.status(instance)
            except SiteUnreachable as exc:
                errors[name] = down[name] = str(exc)
            except SiteError as exc:  # it answered, but not the question (a wrong token...)
                errors[name] = str(exc)
        return Placement(instance, at, errors)

    def status(self, last: Mapping[str, LastMigration] | None = None) -> list[InstanceStatus]:
        """Every scenario instance: home, where it is, and its entry in `last` (the last
        migration of it that the caller knows of)."""
        down: dict[str, str] = {}
        out = []
        for i in self.sc.instances:
            placed = self.placement(i.name, down)
            known = (last or {}).get(i.name)
            kept = self._kept_note(i.name, placed.site)
            if kept is not None and (known is None or kept.id > known.id):
                known = kept  # ids begin with their start time: the later one is the last
            out.append(InstanceStatus(i.name, i.site, placed, known))
        return out

    def _kept_note(self, instance: str, site: str | None) -> LastMigration | None:
        """The last migration the site where `instance` runs keeps of it (any orchestrator's:
        `mecmig migrate` as well as the controller's REST API), None if none or unasked."""
        ask = getattr(self.sites.get(site or ""), "last_migration", None)
        if ask is None:
            return None
        try:
            note = ask(instance)
            return LastMigration(**note) if isinstance(note, dict) else None
        except (SiteError, TypeError) as exc:
            log.debug("site %s: no last migration of %s: %s", site, instance, exc)
            return None

    def _note(self, record: MigrationRecord) -> None:
        """Leave the finished migration's summary with the site the instance is at now."""
        at = record.destination if record.point_of_no_return_ms is not None else record.source
        note = getattr(self.sites.get(at), "note_migration", None)
        if note is None:
            return
        frozen = record.metrics.get("frozen_ms")
        summary = LastMigration(
            id=record.id,
            outcome=record.outcome.value,
            strategy=record.strategy,
            source=record.source,
            destination=record.destination,
            frozen_ms=round(float(frozen), 3) if isinstance(frozen, int | float) else None,
            total_ms=round(record.total_ms, 3) if record.total_ms is not None else None,
            error=(record.error or "")[:2000] or None,
        )
        try:
            note(record.instance, asdict(summary))
        except SiteError as exc:  # bookkeeping: the migration stands or fell without it
            log.warning("%s: its record was not left at %s: %s", record.id, at, exc)

    def deploy(self, instance: str, site: str | None = None) -> str:
        """Start `instance` at `site` (default: its home site in the scenario). Refused, before
        any site acts, if a site holds it already (AlreadyDeployed) or cannot say whether it
        does (SitesUnreachable): a second copy would answer at the same address."""
        site = site or self.instance(instance).site
        target = self.site(site)
        _refuse_second_copy(self.placement(instance))
        spec = self.spec_at(instance, site)
        self.ensure_image(instance, site)
        target.create(spec)
        if self.network is not None:  # the controller may still have it where it last ran
            try:
                self.network.relocate(instance, site, self.port_at(instance, site))
            except RelocationIncomplete as exc:  # it runs; they learn where when they connect
                log.warning("deployed %s at %s, but %s", instance, site, exc)
        return site

    def deploy_replica(self, instance: str, site: str, standbys: StandbyLink | None = None) -> int:
        """Start a warm replica of stateless `instance` at `site` (issue 12 part 4): the
        primary's spec there (same IP and MAC), its port first made a standby at the controller
        (`standbys`, default the network link if it has them) so that nothing it sends is
        learned, then created. The one deliberate second copy: NotStateless for an instance
        that is not `stateless: true`, NotServing if it runs nowhere, AlreadyDeployed if `site`
        holds it, SitesUnreachable if `site` cannot say. Returns the replica's port; a create
        that fails removes the standby again."""
        inst = self.instance(instance)
        if not inst.stateless:
            raise NotStateless(f"{instance} is not stateless: it gets no replica (migrate it)")
        target = self.site(site)
        placed = self.placement(instance)
        if site in placed.errors:
            raise SitesUnreachable(
                f"{instance}: {site} cannot say what it holds: {placed.errors[site]}"
            )
        if site in placed.present:
            raise AlreadyDeployed(f"{instance} is {placed.present[site]} at {site} already")
        if not placed.running:
            raise NotServing(f"{instance} runs nowhere: deploy it before its replicas")
        spec = self.spec_at(instance, site)
        self.ensure_image(instance, site)
        if standbys is None and isinstance(self.network, StandbyLink):
            standbys = self.network
        if standbys is not None:
            standbys.add_standby(instance, site, spec.port)
        try:
            target.create(spec)
        except BaseException:
            if standbys is not None:
                try:
                    standbys.remove_standby(instance, site)
                except Exception as exc:  # the create's error is the one to report
                    log.warning("%s: standby at %s left: %s", instance, site, exc)
            raise
        return spec.port

    def logs(self, instance: str, lines: int = 100) -> tuple[str, list[str]]:
        """Where `instance` runs and the last `lines` lines it wrote (its log moves with it).
        NotServing if it runs nowhere."""
        self.instance(instance)
        where = self.where(instance)
        if where is None:
            raise NotServing(f"{instance} runs at no site")
        return where, self.site(where).logs(instance, lines)

    def stop(self, instance: str) -> StopReport:
        """Remove `instance` from every site (running, stopped, or what a migration left):
        the report says where something was, and which sites could not remove it or be asked."""
        placed = self.placement(instance)
        removed: dict[str, str] = {}
        failed: dict[str, str] = {}
        for name, site in self.sites.items():
            if name in placed.errors:
                continue
            try:
                site.destroy(instance)
            except SiteError as exc:
                failed[name] = str(exc)
                continue
            if name in placed.present:
                removed[name] = placed.present[name]
        self._forget_standbys(instance)
        return StopReport(instance, removed, failed, dict(placed.errors))

    def _standby_sites(self, instance: str) -> list[str]:
        """Where the controller holds standbys of `instance` (none without a StandbyLink)."""
        if not isinstance(self.network, StandbyLink):
            return []
        try:
            return self.network.standby_sites(instance)
        except StandbyRefused:
            return []

    def _forget_standbys(self, instance: str) -> None:
        """The controller forgets `instance`'s standbys (its replicas are gone with it)."""
        if not isinstance(self.network, StandbyLink):
            return
        for site in self._standby_sites(instance):
            try:
                self.network.remove_standby(instance, site)
            except StandbyRefused as exc:  # gone meanwhile
                log.info("%s: standby at %s: %s", instance, site, exc)

    def plan_migration(
        self,
        instance: str,
        to: str,
        *,
        strategy: str = DEFAULT_STRATEGY,
        budget_ms: float = DOWNTIME_BUDGET_MS,
        rate_bps: int = MIGRATION_RATE_BPS,
        listener: Listener | None = None,
        hold: str = HOLD_MODE,
        migration_id: str | None = None,
        reserve: bool = True,
        fit_budget: bool = True,
        final_rate_bps: int | None = None,
        command: Sequence[str] | None = None,
        compress: str = "auto",
    ) -> Migration:
        """A migration of `instance` to site `to`, checked and ready to `run()`: raises
        OrchestratorError (what is wrong, nothing changed) if it cannot start. `reserve=False`:
        its copy reserves no bandwidth (best effort); its traffic is still moved and held.
        `fit_budget=False`: the reservation is `rate_bps` throughout (a bandwidth cap), never
        sized to fit the budget. `final_rate_bps`: the final iteration's bandwidth (see
        migration.engine.Plan). `compress`: the copies' compression, "auto" (chosen per copy),
        "none" or "zstd". `command`: what the destination starts, for a strategy that
        does not keep the configuration (`filesystem`); CommandRefused for any other, or for
        `filesystem` without one where the image gives none."""
        if compress not in ("auto", "none", "zstd"):
            raise OrchestratorError(f"compress is auto, none or zstd, not {compress!r}")
        try:
            self.sc.instance(instance)
        except KeyError as exc:
            raise UnknownName(str(exc.args[0])) from exc
        try:
            self.sc.site(to)
        except KeyError as exc:
            raise UnknownName(f"no site called {to!r}") from exc
        try:
            chosen = strategy_named(strategy)
        except ValueError as exc:
            raise UnknownName(str(exc)) from exc
        fresh = None
        if not chosen.keeps_config:
            fresh = self.fresh_start(instance, command)
        elif command is not None:
            raise CommandRefused(
                f"strategy {strategy} keeps {instance}'s configuration, its command included: "
                "a command to start it with is only for strategy filesystem"
            )
        source = self.where(instance)
        if source is None:
            raise NotServing(f"{instance} is not running at any site")
        if source == to:
            raise NotServing(f"{instance} already runs at {to}")
        # before anything of the service changes: the destination gets its image if it has not
        # got it (a site error here refuses the migration; the image stays there, a cache)
        try:
            sent = self.ensure_image(instance, to)
        except SiteError as exc:
            raise ImageNotSent(f"{instance}: its image could not be sent to {to}: {exc}") from exc
        plan = Plan(
            instance=instance,
            source=self.site(source),
            destination=self.site(to),
            destination_site=to,
            destination_port=self.port_at(instance, to),
            strategy=strategy,
            budget_ms=budget_ms,
            rate_bps=rate_bps,
            dirty_tracking=self.dirty_tracking or self._dirty_tracking(source),
            predicted_bytes=self.sc.instance(instance).memory,
            hold=hold,
            transfer_port=self.migration_ports(instance)[0],
            page_server_port=self.migration_ports(instance)[1],
            fit_budget=fit_budget,
            final_rate_bps=final_rate_bps,
            fresh=fresh,
            compress=compress,
        )

        def noted(event: str, record: MigrationRecord, phase: Any) -> None:
            if listener is not None:
                listener(event, record, phase)
            if event == "finished":
                self._note(record)

        network = self.network
        if network is not None and not reserve:
            network = WithoutReservations(network)
        mig = Migration(
            plan,
            network,
            listener=noted,
            migration_id=migration_id or new_migration_id(),
        )
        if sent is not None:
            mig.record.metrics["image"] = sent.digest
            mig.record.metrics["image_bytes_sent"] = sent.bytes
            mig.record.metrics["image_send_s"] = round(sent.seconds, 3)
        return mig

    def migrate(
        self,
        instance: str,
        to: str,
        *,
        strategy: str = DEFAULT_STRATEGY,
        budget_ms: float = DOWNTIME_BUDGET_MS,
        rate_bps: int = MIGRATION_RATE_BPS,
        listener: Listener | None = None,
        hold: str = HOLD_MODE,
        migration_id: str | None = None,
        command: Sequence[str] | None = None,
        compress: str = "auto",
    ) -> MigrationRecord:
        """Live-migrate `instance` to site `to`; MigrationError (record inside) if it failed."""
        return self.plan_migration(
            instance,
            to,
            strategy=strategy,
            budget_ms=budget_ms,
            rate_bps=rate_bps,
            listener=listener,
            hold=hold,
            migration_id=migration_id,
            command=command,
            compress=compress,
        ).run()

    def _dirty_tracking(self, site: str) -> bool:
        """Whether the site's kernel tracks dirty memory (its agent's `criu check`)."""
        health = getattr(self.site(site), "health", None)
        if health is None:
            return False
        try:
            return bool(health().get("mem_dirty_track", False))
        except SiteError:
            return False

    def teardown(self, instance: str) -> None:
        """Remove `instance` from every site, and its standbys from the controller (best effort
        per site)."""
        for name, site in self.sites.items():
            try:
                site.destroy(instance)
            except SiteError as exc:
                log.warning("site %s: %s", name, exc)
        self._forget_standbys(instance)


def _checked_command(command: Sequence[str] | None) -> tuple[str, ...]:
    """A manual command, checked (migration.site); () for none."""
    if command is None:
        return ()
    try:
        return check_command(command)
    except CommandInvalid as exc:
        raise CommandRefused(f"command: {exc}") from None


def _refuse_second_copy(placed: Placement) -> None:
    """AlreadyDeployed if a site holds `placed.instance`, SitesUnreachable if one cannot say."""
    name = placed.instance
    if placed.running:
        raise AlreadyDeployed(
            f"{name} already runs at {', '.join(placed.running)}: stop it first, or migrate it"
        )
    if placed.present:
        where = ", ".join(f"{status} at {site}" for site, status in placed.present.items())
        raise AlreadyDeployed(
            f"{name} is {where} (left by a failed start or migration, or a migration in "
            "progress): stop it first, which removes it"
        )
    if placed.errors:
        raise SitesUnreachable(
            f"{name} is not deployed: whether it runs elsewhere cannot be told; "
            + "; ".join(placed.errors.values()),
            everywhere=not placed.at,
        )
