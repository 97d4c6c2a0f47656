"""The medallion over one source database, as a Dagster component declared in a ``defs.yaml``.

One instance is one source database and its table list: bronze, silver and gold assets per table, the
instance's job, its daily schedule and, when some table has ``source: files``, its landing-zone sensor.
``defs/medallion/defs.yaml`` declares the default instance (the settings' source and table list); a
second source database is one more folder with a ``defs.yaml`` (docs/components.md)::

    type: platform_assets.components.MedallionComponent
    attributes:
      name: crm
      tables_file: tables.yaml          # relative to this defs.yaml's folder
      source_url_env: CRM_SOURCE_URL    # the NAME of the variable holding the URL, never the URL

Why a component here and nowhere else: the other domains exist once per code location; the medallion
is the one piece a user repeats, once per source database, with different arguments.

Names. An instance's name replaces ``medallion`` in every name it owns, and prefixes its tables:

==========================  =======================  =================================
                            default (``medallion``)   instance ``crm``
==========================  =======================  =================================
asset keys, lake tables     ``<layer>/<table>``       ``<layer>/crm_<table>``
state rows, pools, landing  ``watermark/<table>``...  ``watermark/crm_<table>``...
group                       ``medallion``             ``crm``
job                         ``medallion_job``         ``crm_job``
(alias job)                 ``spotify_medallion``     none
schedule                    ``medallion_daily``       ``crm_daily``
landing-zone sensor         ``landing_files``         ``crm_landing_files``
==========================  =======================  =================================

Everything keyed by a table (lake folder, watermark and checkpoint rows, per-table pool, landing folder,
processed-file rows, audit task rows) derives from the table's ``name``, so a prefixed name keeps two
instances apart everywhere at once. What is left to collide is checked when the code location loads,
with a one-line :class:`~platform_assets.core.errors.ConfigurationError`: two instances of one name, two
instances producing the same table name (``crm_orders`` in the default's list and ``orders`` in
``crm``'s), a name that is another domain's folder (its group and jobs carry that name).
"""

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Self

import dagster as dg
import yaml
from dagster import BetaWarning, Definitions, PreviewWarning, with_source_code_references
from dagster._utils.schedules import is_valid_cron_string
from pydantic import PrivateAttr

from platform_assets.core.errors import ConfigurationError
from platform_assets.core.medallion.config import TableConfig, load_tables
from platform_assets.defs.medallion.assets import table_assets
from platform_assets.defs.medallion.bronze import source_url_in
from platform_assets.defs.medallion.common import GROUP
from platform_assets.defs.medallion.jobs import (
    ALIAS_JOB_NAME,
    JOB_NAME,
    SCHEDULE_NAME,
    daily_schedule,
    medallion_job,
)
from platform_assets.defs.medallion.landing_zone import SENSOR_NAME, landing_sensor
from platform_assets.defs.medallion.partitions import daily_partitions
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.resources import uses_spark
from platform_assets.settings import SETTINGS, Settings

DEFAULT_NAME = GROUP  # "medallion": the instance whose names are today's (no prefix, the alias job)
SETTINGS_SOURCE = SETTINGS["source_url"].variable  # PLATFORM_SOURCE_URL: the settings' source
NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class InstanceTable(TableConfig):
    """A table of an instance other than the default: its ``name`` (asset keys, lake tables, state rows,
    pools, landing folder) starts with the instance's prefix; ``table`` stays the source table's name."""

    prefix: str = ""

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.table.lower()}"


@dataclass(frozen=True)
class MedallionInstance:
    """One medallion, resolved: its names, tables and source."""

    name: str
    tables: tuple[TableConfig, ...]
    source_variable: str | None  # None: the settings' source (PLATFORM_SOURCE_URL)
    cron: str
    folder: Path | None  # the folder of the defs.yaml declaring it (None: built in Python)

    @property
    def where(self) -> str:
        """The instance in a message: its defs.yaml."""
        return str(_relative(self.folder / "defs.yaml")) if self.folder else f"medallion {self.name!r}"

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_NAME

    def source_url(self, settings: Settings) -> str:
        """The URL of its source database: the settings' or the one in its variable (read now, as a
        bronze step reads it). A ConfigurationError names the variable when it is not set."""
        if self.source_variable is None:
            return settings.source_url
        try:
            return source_url_in(self.source_variable, f"medallion {self.name!r}'s")
        except ConfigurationError as exc:
            raise ConfigurationError(f"{self.where}: {exc}") from None

    @property
    def group(self) -> str:
        return self.name

    @property
    def job_name(self) -> str:
        return JOB_NAME if self.is_default else f"{self.name}_job"

    @property
    def schedule_name(self) -> str:
        return SCHEDULE_NAME if self.is_default else f"{self.name}_daily"

    @property
    def sensor_name(self) -> str:
        return SENSOR_NAME if self.is_default else f"{self.name}_{SENSOR_NAME}"


def instance_definitions(settings: Settings, instance: MedallionInstance) -> Definitions:
    """Three assets per table of ``instance``, its job (the default instance also its former name,
    ``spotify_medallion``), its daily schedule, and its landing-zone sensor when a table has ``source:
    files``."""
    partitions = daily_partitions(settings)
    job = medallion_job(partitions, instance.job_name, instance.group)
    jobs = [job, medallion_job(partitions, ALIAS_JOB_NAME)] if instance.is_default else [job]
    tables = instance.tables
    assets = [a for table in tables for a in table_assets(table, partitions, instance.source_variable)]
    if not instance.is_default:
        with warnings.catch_warnings():  # a preview API, used knowingly
            warnings.simplefilter("ignore", PreviewWarning)
            assets = [
                a.map_asset_specs(lambda s: s.replace_attributes(group_name=instance.group)) for a in assets
            ]
    with warnings.catch_warnings():  # a beta API, used knowingly: one notice per asset is only noise
        warnings.simplefilter("ignore", BetaWarning)
        # code references: the UI links each asset to the factory that builds it
        assets = with_source_code_references(assets)
    return Definitions(
        assets=assets,
        jobs=jobs,
        schedules=[
            daily_schedule(job, partitions, settings.late_days, instance.cron, instance.schedule_name)
        ],
        # landing-zone files: only when some table has source: files
        sensors=[landing_sensor(tables, instance.sensor_name)] if any(t.from_files for t in tables) else [],
    )


class MedallionComponent(dg.Component, dg.Model, dg.Resolvable):
    """The medallion (bronze → silver → gold) over one source database and its table list."""

    name: str = DEFAULT_NAME
    """The instance's name: its group, the prefix of its tables (``<layer>/<name>_<table>``) and of its
    job, schedule and sensor. ``medallion`` (the default) keeps today's names, unprefixed. Lower case,
    letters, digits and ``_``, at most 30 characters."""

    tables_file: str | None = None
    """Its table list (the format of platform_assets/tables.yaml), relative to this defs.yaml's folder
    or absolute. Default: the settings' (``PLATFORM_TABLES_FILE``)."""

    source_url_env: str = SETTINGS_SOURCE
    """The NAME of the environment variable holding the source database's URL, read when a bronze step
    runs (a URL with a password never goes in YAML). Default ``PLATFORM_SOURCE_URL``: the settings'
    source, as the settings resolve it (environment, settings file, default)."""

    engine: Literal["polars", "spark"] | None = None
    """Engine of silver and gold for tables without an ``engine:`` of their own. Default: the settings'
    (``PLATFORM_ENGINE``)."""

    schedule: str | None = None
    """Cron (UTC) of the instance's daily schedule. Default: the settings' (``PLATFORM_MEDALLION_SCHEDULE``)."""

    _folder: Path | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, attributes, context: dg.ComponentLoadContext) -> Self:
        component = super().load(attributes, context)
        component._folder = context.path  # relative tables files resolve here, also for the other instances
        return component

    def build_defs(self, context: dg.ComponentLoadContext) -> Definitions:
        settings = active_settings()
        instance = self.instance(settings, self._folder or context.path)
        check_names(instance, self._others(context, settings), context.defs_module_path)
        if not uses_spark(settings) and any(t.engine == "spark" for t in instance.tables):
            raise ConfigurationError(
                f"{instance.where}: tables of medallion {instance.name!r} run on Spark but the code location "
                "starts no Spark session: set PLATFORM_ENGINE=spark (or engine: spark on a table of the "
                "settings' table list)"
            )
        return instance_definitions(settings, instance)

    def instance(self, settings: Settings, folder: Path | None) -> MedallionInstance:
        """This declaration resolved against ``settings``; every mistake is one line naming its file."""
        where = MedallionInstance(self.name, (), None, "", folder).where
        if not NAME.match(self.name):
            raise ConfigurationError(
                f"{where}: name {self.name!r} must be lower case letters, digits and _, starting with a letter "
                "(at most 30 characters)"
            )
        variable = self.source_url_env
        if not VARIABLE.match(variable):
            raise ConfigurationError(
                f"{where}: source_url_env {variable!r} must be the NAME of an environment variable holding the "
                "URL (the URL itself never goes in defs.yaml)"
            )
        cron = self.schedule or settings.medallion_schedule
        if not is_valid_cron_string(cron):
            raise ConfigurationError(f"{where}: schedule {cron!r} is not a cron expression")
        tables_file = settings.tables_file
        if self.tables_file is not None:
            tables_file = Path(self.tables_file)
            if not tables_file.is_absolute() and folder is not None:
                tables_file = folder / tables_file
        prefix = "" if self.name == DEFAULT_NAME else f"{self.name}_"
        engine = self.engine or settings.engine
        tables = tuple(
            replace(t, engine=t.engine or engine)
            if not prefix
            else InstanceTable(**_fields(t, engine), prefix=prefix)
            for t in load_tables(tables_file)
        )
        return MedallionInstance(
            name=self.name,
            tables=tables,
            source_variable=None if variable == SETTINGS_SOURCE else variable,
            cron=cron,
            folder=folder,
        )

    def _others(self, context: dg.ComponentLoadContext, settings: Settings) -> list[MedallionInstance]:
        """The other medallion instances of the code location being loaded."""
        others = context.component_tree.get_all_components(of_type=MedallionComponent)
        return [c.instance(settings, c._folder) for c in others if c is not self]


# The package's defs folder, and the names a defs.yaml may give this component's type.
DEFS_FOLDER = Path(__file__).resolve().parents[1] / "defs"
COMPONENT_TYPES = {
    "platform_assets.components.MedallionComponent",
    "platform_assets.components.medallion.MedallionComponent",
}


def instances_in(settings: Settings, defs_folder: Path = DEFS_FOLDER) -> list[MedallionInstance]:
    """The medallion instances the ``defs.yaml`` files under ``defs_folder`` declare, read without
    loading the code location (for the commands: ``platform-check-config``, ``platform-history``), the
    default instance first. A declaration that is not valid YAML or not a valid instance is a one-line
    ConfigurationError naming its file."""
    instances = []
    for declaration in sorted(defs_folder.glob("*/defs.yaml")):
        try:
            documents = list(yaml.safe_load_all(declaration.read_text()))
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{_relative(declaration)}: not valid YAML: {exc}") from None
        for document in documents:
            if not isinstance(document, dict) or document.get("type") not in COMPONENT_TYPES:
                continue
            try:
                component = MedallionComponent(**(document.get("attributes") or {}))
            except ValueError as exc:  # pydantic's ValidationError
                first = str(exc).splitlines()[0]
                raise ConfigurationError(f"{_relative(declaration)}: {first}") from None
            instances.append(component.instance(settings, declaration.parent))
    return sorted(instances, key=lambda i: (not i.is_default, i.name))


def declared_instances(context: dg.ComponentLoadContext, settings: Settings) -> list[MedallionInstance]:
    """Every medallion instance of the code location being loaded (for the domains that act on every
    medallion table, such as maintenance), in the order of their folders."""
    components = context.component_tree.get_all_components(of_type=MedallionComponent)
    instances = [c.instance(settings, c._folder) for c in components]
    return sorted(instances, key=lambda i: (not i.is_default, i.name))


def check_names(instance: MedallionInstance, others: list[MedallionInstance], defs_folder: Path) -> None:
    """One-line ConfigurationError when ``instance`` would share a name with another instance or domain."""
    for other in others:
        if other.name == instance.name:
            raise ConfigurationError(
                f"{instance.where}: medallion name {instance.name!r} is also the name of {other.where}: "
                "give each instance its own name"
            )
        shared = sorted({t.name for t in instance.tables} & {t.name for t in other.tables})
        if shared:
            raise ConfigurationError(
                f"{instance.where}: table {shared[0]!r} of medallion {instance.name!r} is also a table of "
                f"{other.where}: rename the instance or the table"
            )
    own_folders = {i.folder.name for i in (instance, *others) if i.folder is not None}
    domains = {p.name for p in defs_folder.iterdir() if p.is_dir() and p.name not in own_folders}
    if not instance.is_default and instance.name in domains:
        raise ConfigurationError(
            f"{instance.where}: medallion name {instance.name!r} is the name of the domain defs/{instance.name} "
            "(its asset group and jobs): choose another name"
        )


def _fields(table: TableConfig, engine: str) -> dict:
    fields = {f: getattr(table, f) for f in table.__dataclass_fields__ if f != "prefix"}
    fields["engine"] = table.engine or engine
    return fields


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
