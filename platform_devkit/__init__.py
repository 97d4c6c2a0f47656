"""Tools around the platform, not part of the code location: the sample source database, the demo, the
offline REST Countries stand-in and in-process runs of the platform's jobs.

Nothing under ``platform_assets`` imports this package; the dev kit may import anything from there.
"""
