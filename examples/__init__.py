"""Runnable examples of aether (see the README): ``examples.order_totals`` and
``examples.stock_reservation``, hosted with ``aether node run --processor MODULE:ATTR``."""
