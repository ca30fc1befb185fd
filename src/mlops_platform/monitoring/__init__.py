"""Monitoring the champion: one module per job.

`windows` (which rows a check judges), `reference` (what the model was trained on),
`statistics` (drift statistics of one feature), `drift` (bucket counts in MariaDB and the
verdict), `performance` (live accuracy from late labels), `reports` (the `drift_reports`
store), `decision` (retrain or not, from stored reports), `html_report` and `runs`
(the HTML page and the MLflow run of a drift report).
"""
