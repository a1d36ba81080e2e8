"""Collaborative inference: policies that decide, per request, where a sample is computed."""
