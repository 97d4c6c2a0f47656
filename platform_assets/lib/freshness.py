"""Every asset's freshness policy, applied in one place (the code location's ``map_asset_specs`` step).

The policy is Dagster's own ``FreshnessPolicy.time_window`` (or ``FreshnessPolicy.cron`` for a deadline):
the UI shows each asset's freshness, and Dagster's freshness daemon evaluates it. Its windows come from :mod:`platform_assets.core.freshness`:
an asset's own declaration first, then a ``freshness:`` field in ``tables.yaml`` (the table's bronze,
silver and gold) or ``streams.yaml`` (the stream's bronze table and the silver assets read from it),
then the platform's default per asset and per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from dagster import AssetKey, AssetSpec, FreshnessPolicy
from dagster._check import CheckError
from dagster._core.definitions.freshness import CronFreshnessPolicy, TimeWindowFreshnessPolicy
from dagster._utils.schedules import get_latest_completed_cron_tick

from platform_assets.core.errors import ConfigurationError
from platform_assets.core.freshness import Deadline, Freshness, FreshnessRule, default_freshness
from platform_assets.core.lake.locations import LAYERS
from platform_assets.core.medallion.config import TableConfig, load_tables
from platform_assets.core.streaming.declaration import StreamDeclaration, load_streams
from platform_assets.settings import Settings


def declared_overrides(
    tables: Iterable[TableConfig], streams: Iterable[StreamDeclaration]
) -> tuple[dict[str, FreshnessRule], dict[str, FreshnessRule]]:
    """(by asset, by upstream bronze table): a table's ``freshness`` for its lake assets; a stream's for
    its bronze table, and for the silver assets that read that table (the second mapping)."""
    by_asset: dict[str, FreshnessRule] = {}
    by_upstream: dict[str, FreshnessRule] = {}
    for table in tables:
        if table.freshness is not None:
            by_asset.update({f"{layer}/{table.name}": table.freshness for layer in LAYERS})
    for stream in streams:
        if stream.freshness is not None:
            by_asset[stream.bronze_table] = stream.freshness
            by_upstream[stream.bronze_table] = stream.freshness
    return by_asset, by_upstream


def freshness_for(
    spec: AssetSpec, by_asset: dict[str, FreshnessRule], by_upstream: dict[str, FreshnessRule]
) -> FreshnessRule | None:
    """The freshness ``spec`` gets from the declarations and defaults (None: none expected)."""
    asset = spec.key.to_user_string()
    if asset in by_asset:
        return by_asset[asset]
    if spec.key.path[0] == "silver":
        for dep in spec.deps:
            upstream = dep.asset_key.to_user_string()
            if upstream in by_upstream:
                return by_upstream[upstream]
    return default_freshness(asset, spec.group_name)


def to_policy(freshness: FreshnessRule, asset: str = "") -> FreshnessPolicy:
    """Dagster's policy for ``freshness``. A deadline Dagster refuses (a cron it cannot parse, a window
    longer than the cron's interval, an unknown timezone) is a ConfigurationError naming ``asset``."""
    if isinstance(freshness, Freshness):
        return FreshnessPolicy.time_window(fail_window=freshness.fail_after, warn_window=freshness.warn_after)
    try:
        return FreshnessPolicy.cron(
            deadline_cron=freshness.cron,
            lower_bound_delta=freshness.lower_bound,
            timezone=freshness.timezone,
        )
    except CheckError as exc:
        detail = str(exc).removeprefix("Invariant failed. Description: ")  # lower_bound_delta is `within`
        raise ConfigurationError(f"{asset or 'freshness'}: deadline refused by Dagster: {detail}") from None


def from_policy(policy: FreshnessPolicy | None) -> FreshnessRule | None:
    """The platform's reading of a Dagster policy (time window or cron); None for no policy."""
    if isinstance(policy, TimeWindowFreshnessPolicy):
        warn = policy.warn_window.to_timedelta() if policy.warn_window else None
        return Freshness(policy.fail_window.to_timedelta(), warn)
    if isinstance(policy, CronFreshnessPolicy):
        return Deadline(policy.deadline_cron, policy.lower_bound_delta, policy.timezone)
    return None


def last_tick(rule: FreshnessRule, now: datetime) -> datetime | None:
    """For a deadline, the last tick of its cron at ``now`` (Dagster's own schedule arithmetic, so the
    alert and the UI judge against the same tick); None for a time window."""
    if isinstance(rule, Freshness):
        return None
    return get_latest_completed_cron_tick(rule.cron, now, rule.timezone)


def with_freshness(settings: Settings) -> Callable[[AssetSpec], AssetSpec]:
    """The ``map_asset_specs`` function giving every asset its freshness policy. An asset that declares
    its own policy keeps it."""
    by_asset, by_upstream = declared_overrides(load_tables(settings.tables_file), load_streams().values())

    def add(spec: AssetSpec) -> AssetSpec:
        if spec.freshness_policy is not None:
            return spec
        freshness = freshness_for(spec, by_asset, by_upstream)
        if freshness is None:
            return spec
        return spec.replace_attributes(freshness_policy=to_policy(freshness, spec.key.to_user_string()))

    return add


def policies(asset_graph) -> dict[AssetKey, FreshnessRule]:
    """The freshness (time window or deadline) of every asset of ``asset_graph`` that has one."""
    found = {}
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        freshness = from_policy(node.freshness_policy_or_from_metadata)
        if freshness is not None:
            found[key] = freshness
    return found
