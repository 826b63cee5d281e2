"""The one layer that talks to nats-py.

Everything aether does on NATS goes through here: connection and options
(`aether.connect` is the public face), the hook dispatcher (error, disconnect and
reconnect listeners added and removed cleanly), server information, and the hot-path
seams (raw per-subscription handlers). No module outside this package touches nats-py
internals.

Seams. nats-py has no public API for a synchronous per-message handler or for several
independent connection listeners, so this package reaches into private attributes in a
few guarded places (`seams`). Each seam is checked once per connection and falls back
to nats-py's public path when the attribute is missing or changed shape. Setting
``AETHER_NATS_SEAMS=off`` forces every fallback (CI runs the suite once that way).
"""
