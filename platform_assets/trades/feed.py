"""``python -m platform_assets.trades.feed``: the trade feed command's old address, kept because users' and
operators' scripts (and the CONTRACT) name it. It runs :func:`platform_assets.cli.trades_feed.main`, the
same as ``python -m platform_assets.cli.trades_feed`` and the ``platform-trades-feed`` console script;
nothing else belongs here."""

from platform_assets.cli.trades_feed import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
