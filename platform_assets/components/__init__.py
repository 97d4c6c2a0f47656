"""Dagster component types of the project (dg's default place for them): a ``defs.yaml`` names one with
``type: platform_assets.components.<Name>``."""

from platform_assets.components.medallion import MedallionComponent

__all__ = ["MedallionComponent"]
