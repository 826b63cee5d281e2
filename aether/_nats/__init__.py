"""The one layer that talks to nats-py.

Everything aether does on NATS goes through here; nothing outside this package touches
nats-py internals:

- `connection`: opening a connection (TLS enforcement, the first-connect budget, the
  reconnect options); `aether.connect` is the public face that turns `Settings` into it.
- `hooks`: one dispatcher per connection for error, disconnect and reconnect listeners,
  added and removed cleanly.
- `permissions`: permission violations turned into prompt `PermissionDeniedError`s.
- `errors`: the one mapping of nats-py and JetStream API errors into `aether.errors`
  (JetStream error codes defined once).
- `jsapi`: the one typed JetStream API (streams, consumers, message gets, publishes, KV).
- `info`: the server's INFO and version, parsed once.
- `raw` and `parser`: the hot-path seams (raw per-subscription handlers, prebuilt
  outbound frames, aether's inbound frame parser).

Seams. nats-py has no public API for a synchronous per-message handler, for writing a
prebuilt frame, or for several independent connection listeners, so this package
reaches into private attributes in a few guarded places: ``Client._process_msg`` and
``Client._ps`` (raw handlers, inbound parser), ``_pending``/``_pending_data_size``/
``_flush_queue``/``_flusher_task`` (outbound frames), ``_error_cb``/``_disconnected_cb``/
``_reconnected_cb`` (hooks on connections aether did not open), ``_request_new_style``
(permission guard), ``_process_info``/``_connect_command`` (TLS enforcement) and
``_server_info`` (server INFO). Each seam is checked once per connection (at connect for
aether's connections, at first use for others) and falls back to nats-py's public path
when the attribute is missing or changed shape. Setting ``AETHER_NATS_SEAMS=off`` forces
every fallback (CI runs the NATS tests once that way).
"""
