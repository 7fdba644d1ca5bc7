"""The broker transports (NATS JetStream, Redis Streams): one package, in layers.

- `contract`: the wire contract's names, statuses, identity tokens and envelopes (pure; the
  only module `ocpp_gateway.backend` takes names from);
- `metrics`: the counters a transport keeps and their Prometheus collector;
- `link`: one charge point's link, its command queue, the table of a transport's links
  (synchronous; deadlines from the process timer's `tick(now)`);
- `protocol`: the broker protocol as plain decisions (claims, holders, command intake, probe
  answers, frame metadata), tested by tables without a server;
- `transport`: `BrokerTransport`, the above composed with one broker client;
- `nats`, `redis`: the thin I/O clients, their options and layouts (their client libraries
  are optional extras: these modules are imported only when a configuration names them).

This package imports none of its modules itself, so that importing `contract` costs nothing
more. The wire contract for backend developers is docs/brokers.md.
"""

__all__: list[str] = []
