"""Recipes for Titan's single-user images and the builder that turns them into Docker images."""
