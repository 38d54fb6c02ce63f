"""Routes the authentication tests knock on, shared by the in-process and the real-server tests."""

from __future__ import annotations

MISSING = "00000000-0000-0000-0000-000000000000"
# One route of each family, plus a path no route serves: all are closed without a token.
PROTECTED = [
    ("GET", "/api/v1/experiments"),
    ("POST", "/api/v1/experiments"),
    ("GET", f"/api/v1/experiments/{MISSING}"),
    ("POST", f"/api/v1/experiments/{MISSING}/cancel"),
    ("GET", f"/api/v1/experiments/{MISSING}/findings"),
    ("GET", f"/api/v1/runs/{MISSING}/metrics"),
    ("GET", f"/api/v1/runs/{MISSING}/histograms"),
    ("GET", f"/api/v1/runs/{MISSING}/curves"),
    ("GET", "/api/v1/presets"),
    ("GET", "/api/v1/presets/seed-bn-mlp"),
    ("GET", f"/api/v1/experiments/{MISSING}/export.csv"),
    ("GET", f"/api/v1/experiments/{MISSING}/export/histograms.csv"),
    ("GET", f"/api/v1/experiments/{MISSING}/export/tensorboard.zip"),
    ("GET", "/api/v1/workers"),
    ("GET", "/metrics"),
    ("GET", "/session"),
    ("GET", "/"),
    ("GET", "/no/such/page"),
]
