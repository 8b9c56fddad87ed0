"""Titan's profile-aware Docker spawner."""
