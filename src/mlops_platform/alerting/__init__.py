"""Prometheus and alerts: the model-quality exporter, the alert rules and Alertmanager's routes.

exporter.py        gauges read from MariaDB's monitoring reports on every scrape, and the
                   webhook that logs the alerts Alertmanager sends
rules.yml          alert rules (tested by rules_test.yml with `promtool test rules`)
prometheus.yml     the compose profile `monitoring`'s scrape targets and rule files
alertmanager.yml   routes every alert to the exporter's webhook
Dockerfile.alertmanager  Debian's Alertmanager, only where prom/alertmanager cannot be pulled
"""
