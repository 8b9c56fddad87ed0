"""User options: parse the spawn form, and validate what any client sent against the profiles.

``parse_form`` only reshapes form fields and has no side effects. ``resolve_selection`` is
the one gate every spawn passes (form and REST API alike): it accepts KubeSpawner's
``user_options`` shape ``{"profile": "<slug>", "<option>": "<choice or typed value>"}`` (plus an
optional ``"dashboard": {"app": ..., "path": ...}``, see :mod:`spawner.dashboard`) and raises
:class:`OptionsError` with a message meant for the user.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.capacity import HostCapacity
from core.profiles import Profile, ProfileSet, Resources, deep_merge, resources_from_settings
from core.text import quoted_names
from spawner.dashboard import DASHBOARD_FIELD, Dashboard, DashboardError, check_image, form_dashboard, parse_dashboard

PROFILE_FIELD = "profile"
OPTION_FIELD_PREFIX = "profile-option-"
UNLISTED_SUFFIX = "--unlisted-choice"
UNLISTED_SENTINEL = "--unlisted-choice"
MAX_VALUE_LENGTH = 256


class OptionsError(ValueError):
    """The options a user sent cannot be used; the message tells them why and what to do."""


@dataclass(frozen=True)
class Selection:
    """A validated choice: the profile, each option's value, and what they add up to."""

    profile: Profile
    values: Mapping[str, str]  # option key → choice key, or the typed value for an unlisted choice
    image: str
    resources: Resources
    dashboard: Dashboard | None = None  # a live-dashboard server (spawner.dashboard), else JupyterLab


def parse_form(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """Form fields → ``user_options``. Only the chosen profile's fields (and a dashboard) are kept."""
    profile = (formdata.get(PROFILE_FIELD) or [""])[0]
    options: dict[str, Any] = {PROFILE_FIELD: profile}
    dashboard = form_dashboard(formdata)
    if dashboard is not None:
        options[DASHBOARD_FIELD] = dashboard
    prefix = f"{OPTION_FIELD_PREFIX}{profile}--"
    for name, values in formdata.items():
        if not name.startswith(prefix) or name.endswith(UNLISTED_SUFFIX):
            continue
        key = name[len(prefix):]
        value = values[0] if values else ""
        if value == UNLISTED_SENTINEL:
            value = (formdata.get(name + UNLISTED_SUFFIX) or [""])[0].strip()
        options[key] = value
    return options


def visible_profiles(profiles: ProfileSet, user: str, groups: Iterable[str]) -> list[Profile]:
    group_set = set(groups)
    return [p for p in profiles.profiles if p.access.allows(user, group_set)]


def _fill_template(value: Any, typed: str) -> Any:
    if isinstance(value, Mapping):
        return {k: _fill_template(v, typed) for k, v in value.items()}
    if isinstance(value, str):
        return value.replace("{value}", typed)
    return value


def settings_for(profile: Profile, values: Mapping[str, str]) -> dict[str, Any]:
    """The profile's settings with each chosen option's override merged in, in option order."""
    settings = dict(profile.settings)
    for option in profile.options:
        value = values.get(option.key, option.default)
        choice = option.choice(value)
        if choice is not None:
            settings = deep_merge(settings, choice.override)
        elif option.unlisted is not None:
            settings = deep_merge(settings, _fill_template(option.unlisted.override, value))
    return settings


def _require_string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise OptionsError(f"Option {key!r} must be a string, not {type(value).__name__}.")
    if len(value) > MAX_VALUE_LENGTH:
        raise OptionsError(f"Option {key!r} is longer than {MAX_VALUE_LENGTH} characters.")
    return value


def _choose_profile(profiles: ProfileSet, options: Mapping[str, Any], user: str,
                    groups: Iterable[str]) -> Profile:
    allowed = visible_profiles(profiles, user, groups)
    if not allowed:
        raise OptionsError("No server profile is available to you. Ask an admin to add you to a team.")
    slug = options.get(PROFILE_FIELD)
    if slug is None or slug == "":
        return next((p for p in allowed if p.default), allowed[0])
    slug = _require_string(PROFILE_FIELD, slug)
    profile = next((p for p in allowed if p.slug == slug), None)
    if profile is None:
        names = ", ".join(p.slug for p in allowed)
        if profiles.get(slug) is not None:
            raise OptionsError(f"Profile {slug!r} is not available to you. Choose one of: {names}.")
        raise OptionsError(f"Unknown profile {slug!r}. Choose one of: {names}.")
    return profile


def _image_dashboards() -> dict[str, tuple[str, ...]]:
    from core.images import catalog

    return {name: recipe.dashboards for name, recipe in catalog().items()}


def resolve_selection(profiles: ProfileSet, options: Any, user: str, groups: Iterable[str],
                      host: HostCapacity, image_dashboards: Mapping[str, Collection[str]] | None = None) -> Selection:
    """Validate ``options`` for ``user`` (a member of ``groups``) on ``host``.

    ``image_dashboards`` (image → the dashboard apps it serves) defaults to ``images/catalog.yaml``."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise OptionsError("Server options must be a JSON object like {\"profile\": \"small\"}.")
    groups = list(groups)
    profile = _choose_profile(profiles, options, user, groups)
    known = {o.key for o in profile.options}
    unknown = sorted(str(k) for k in options if k not in (PROFILE_FIELD, DASHBOARD_FIELD) and k not in known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise OptionsError(f"Unknown option(s) for profile {profile.slug!r}: {quoted_names(unknown)}. "
                           f"This profile's options: {allowed}.")
    values: dict[str, str] = {}
    for option in profile.options:
        value = _require_string(option.key, options.get(option.key, option.default)).strip()
        if option.choice(value) is None:
            if option.unlisted is None:
                offered = ", ".join(c.key for c in option.choices)
                raise OptionsError(f"{value!r} is not a choice for {option.display_name}. "
                                   f"Choose one of: {offered}.")
            if not option.unlisted.accepts(value):
                raise OptionsError(f"{option.display_name}: {option.unlisted.validation_message}")
        values[option.key] = value
    settings = settings_for(profile, values)
    try:
        resources = resources_from_settings(settings)
    except ValueError as error:
        raise OptionsError(f"Profile {profile.slug!r}: {error}") from None
    dashboard = None
    if options.get(DASHBOARD_FIELD) is not None:
        try:
            dashboard = parse_dashboard(options[DASHBOARD_FIELD])
            check_image(dashboard, profile.slug, str(settings["image"]),
                        _image_dashboards() if image_dashboards is None else image_dashboards)
        except DashboardError as error:
            raise OptionsError(str(error)) from None
    reasons = host.unmet(resources, profiles.gpu_display_names, check_free_gpus=True)
    if reasons:
        raise OptionsError(f"{profile.display_name} cannot start on {host.where}: {'; '.join(reasons)}.")
    return Selection(profile=profile, values=values, image=str(settings["image"]), resources=resources,
                     dashboard=dashboard)
