"""The spawn page's options form: a view of the profiles for one user, rendered with Jinja."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import jinja2

from core.capacity import HostCapacity
from core.gpu.types import describe_free
from core.profiles import Profile, ProfileOption, ProfileSet, deep_merge, resources_from_settings
from core.units import format_cpu, format_memory
from spawner.options import OPTION_FIELD_PREFIX, UNLISTED_SENTINEL, UNLISTED_SUFFIX, visible_profiles


@dataclass(frozen=True)
class ChoiceView:
    key: str
    display_name: str
    description: str
    selected: bool
    disabled_reason: str


@dataclass(frozen=True)
class OptionView:
    key: str
    field: str
    display_name: str
    choices: tuple[ChoiceView, ...]
    unlisted_label: str
    unlisted_field: str
    unlisted_value: str
    unlisted_sentinel: str
    unlisted_selected: bool


@dataclass(frozen=True)
class ProfileView:
    slug: str
    display_name: str
    description: str
    summary: str
    checked: bool
    disabled_reason: str
    options: tuple[OptionView, ...]


def _summary(profile: Profile, gpu_names: Mapping[str, str]) -> str:
    resources = resources_from_settings(profile.settings)
    parts = [format_cpu(resources.cpu), format_memory(resources.memory)]
    if resources.gpu_type:
        parts.append(f"{resources.gpu_count} × {gpu_names.get(resources.gpu_type, resources.gpu_type)}")
    return ", ".join(parts)


def _option_view(profile: Profile, option: ProfileOption, profiles: ProfileSet, host: HostCapacity,
                 previous: Mapping[str, str]) -> OptionView:
    wanted = previous.get(option.key, option.default)
    choices = []
    for choice in option.choices:
        settings = deep_merge(profile.settings, choice.override)
        reasons = host.unmet(resources_from_settings(settings), profiles.gpu_display_names)
        description = choice.description
        gpu = settings.get("resources", {}).get("gpu", {})
        if gpu.get("type") and choice.override.get("resources", {}).get("gpu", {}).get("type"):
            gpu_type = gpu["type"]
            total = host.gpus_total.get(gpu_type, 0)
            if total:
                free_text = describe_free(gpu_type, host.gpus_free.get(gpu_type, 0), total)
                description = f"{description}; {free_text}" if description else free_text
        choices.append(ChoiceView(key=choice.key, display_name=choice.display_name, description=description,
                                  selected=choice.key == wanted, disabled_reason="; ".join(reasons)))
    field = f"{OPTION_FIELD_PREFIX}{profile.slug}--{option.key}"
    unlisted_selected = option.unlisted is not None and option.choice(wanted) is None
    return OptionView(
        key=option.key, field=field, display_name=option.display_name, choices=tuple(choices),
        unlisted_label=option.unlisted.display_name if option.unlisted else "",
        unlisted_field=field + UNLISTED_SUFFIX, unlisted_value=wanted if unlisted_selected else "",
        unlisted_sentinel=UNLISTED_SENTINEL, unlisted_selected=unlisted_selected,
    )


def form_view(profiles: ProfileSet, user: str, groups: Iterable[str], host: HostCapacity,
              previous: Mapping[str, str] | None = None) -> list[ProfileView]:
    """What the form shows ``user``: only profiles they may use, with disabled reasons."""
    previous = previous or {}
    allowed = visible_profiles(profiles, user, groups)
    wanted_slug = previous.get("profile") or next((p.slug for p in allowed if p.default), "")
    views: list[ProfileView] = []
    for profile in allowed:
        reasons = host.unmet(resources_from_settings(profile.settings), profiles.gpu_display_names)
        options = tuple(_option_view(profile, o, profiles, host, previous if profile.slug == wanted_slug else {})
                        for o in profile.options)
        for option in options:
            if option.choices and all(c.disabled_reason for c in option.choices) and not option.unlisted_label:
                reasons = reasons or [option.choices[0].disabled_reason]
        views.append(ProfileView(
            slug=profile.slug, display_name=profile.display_name, description=profile.description,
            summary=_summary(profile, profiles.gpu_display_names), checked=False,
            disabled_reason="; ".join(dict.fromkeys(reasons)), options=options,
        ))
    # Check the wanted profile if it can start, else the first one that can.
    startable = [v for v in views if not v.disabled_reason]
    target = next((v for v in startable if v.slug == wanted_slug), startable[0] if startable else None)
    return [ProfileView(**{**v.__dict__, "checked": v is target}) for v in views]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("spawner", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )


def render_form(views: list[ProfileView]) -> str:
    return _environment().get_template("options_form.html").render(profiles=views)
