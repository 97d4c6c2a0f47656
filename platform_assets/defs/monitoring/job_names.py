"""Name a run of one of Dagster's implicit asset jobs after the platform job that covers it.

A run started from the UI's Materialize button belongs to ``__ASSET_JOB`` (or ``__ASSET_JOB_<n>``), and
an in-process ``materialize()`` to ``__ephemeral_asset_job__``: names that say nothing about which
pipeline ran. The audit records such a run under the named job (``medallion_job``, ``customer_job``,
...) whose asset selection holds every asset the run selected, the smallest one when several do, so a
Materialize of the dimuser assets is a ``medallion_job`` run. A run no named job covers (say, assets
of two domains at once) keeps Dagster's name. The jobs are read from the code location's own
definitions, the ones the sensor is loaded with, so a new job is picked up without code here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from dagster import Definitions, RepositoryDefinition
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.materialize import EPHEMERAL_JOB_NAME


def is_implicit_asset_job(job_name: str) -> bool:
    """True for the jobs Dagster makes up to run a selection of assets (not a job anyone named)."""
    return job_name.startswith(IMPLICIT_ASSET_JOB_NAME) or job_name == EPHEMERAL_JOB_NAME


@dataclass(frozen=True)
class JobCatalog:
    """The named jobs of a code location and the asset keys (``bronze/dimuser``) each one selects."""

    assets_by_job: Mapping[str, frozenset[str]]

    @classmethod
    def from_repository(cls, repository: RepositoryDefinition) -> JobCatalog:
        return cls(
            {
                name: frozenset(
                    key.to_user_string() for key in repository.get_job(name).asset_layer.selected_asset_keys
                )
                for name in repository.job_names
                if not is_implicit_asset_job(name)
            }
        )

    @classmethod
    def from_definitions(cls, definitions: Definitions) -> JobCatalog:
        return cls.from_repository(definitions.get_repository_def())

    def job_covering(self, assets: Collection[str]) -> str | None:
        """The named job selecting every one of ``assets`` (the smallest, then the first by name)."""
        wanted = set(assets)
        if not wanted:
            return None
        covering = [
            (len(selected), name) for name, selected in self.assets_by_job.items() if wanted <= selected
        ]
        return min(covering)[1] if covering else None


def attributed_job_name(dagster_job_name: str, assets: Collection[str], jobs: JobCatalog | None) -> str:
    """The job name the audit records: the covering named job for an implicit asset job, else Dagster's."""
    if jobs is None or not is_implicit_asset_job(dagster_job_name):
        return dagster_job_name
    return jobs.job_covering(assets) or dagster_job_name
