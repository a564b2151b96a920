"""Deploying a pruned model: export through Ultralytics' exporter, checked against torch, and its latency."""
