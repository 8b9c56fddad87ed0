"""Titan's hub service: git autosave (``service.autosave``, ``service.engine``), its pages and API."""
