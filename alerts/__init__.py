"""The human side of an alarm: lifecycle, routing, escalation, delivery channels.

- `alerts.lifecycle`: open → acknowledged → resolved, re-opening, the audit trail;
- `alerts.notification`, `alerts.texts`: what people are told, in Russian and Kazakh;
- `alerts.channels`: Web Push, e-mail, webhook, MQTT to the workers' app, apprise URLs;
- `alerts.delivery`: one delivery per (change, recipient, channel, address), retried
  with backoff, logged, resumable after a crash.
"""
