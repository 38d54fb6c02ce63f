"""The dashboard: server-side page shells whose scripts read the JSON API (no build step)."""
