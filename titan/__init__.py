"""Titan's settings, state directory and hub wiring helpers."""
