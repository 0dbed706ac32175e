"""Helpers: how a compute package serializes its model parameters."""
