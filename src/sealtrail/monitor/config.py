"""The monitor's configuration: rules, sinks, grouping, suppression, trail-health bounds.

``sealtrail serve --rules DIR --alert-webhook URL`` covers the simple case; everything else is
a config file (JSON or YAML), validated with errors that name the field::

    rules: [./rules, ./more-rules/brute.yml]   # files or directories (native and Sigma rules)
    builtin: true            # the built-in pack (default); false, or per-rule overrides:
    # builtin: {builtin.brute_force: {count: 10}, builtin.clock_skew: false}
    sinks:                   # see docs/alerts.md
      - {type: webhook, url: https://hooks.example/alerts, secret: "…"}
    dedup_window: 1h         # one alert per rule and key while it stays open this long
    suppress:                # drop detections (e.g. a known noisy source) until a date
      - {rule: builtin.clock_skew, key: legacy-batch, until: "2027-01-01T00:00:00Z",
         reason: "NTP fix scheduled (CHG-1234)"}
    disk_min_free: {ratio: 0.05, bytes: 536870912}
    lag_alert_entries: 50000
    publish: {interval: 1h}  # checkpoints to every sink, now and hourly; 0/off: never
    # publish: {interval: 6h, sinks: [siem]}
    hooks:                   # a command given each log's checkpoint note on stdin
      checkpoint.publish: {command: [/usr/local/bin/keep-checkpoint], timeout: 30s}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import yaml

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.core.timefmt import parse_time
from sealtrail.monitor.builtin import builtin_rules, configure_builtin
from sealtrail.monitor.engine import load_rules
from sealtrail.monitor.publish import HOOK_NAME, HookSettings, PublishSettings
from sealtrail.monitor.rules import (
    Rule,
    RuleError,
    RulesError,
    check_unique,
    parse_duration,
)
from sealtrail.monitor.runner import MonitorSettings, Suppression
from sealtrail.monitor.sinks import build_sinks

_KEYS: Final = frozenset({"rules", "builtin", "sinks", "dedup_window", "suppress",
                          "disk_min_free", "lag_alert_entries", "publish", "hooks"})
_PUBLISH_MIN: Final = 60.0  # seconds: each publication posts to every sink
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(slots=True)
class MonitorConfig:
    """Rules to run, sinks to deliver to, and the monitor's settings."""

    rules: list[Rule] = field(default_factory=builtin_rules)
    sinks: list[dict[str, Any]] = field(default_factory=list)
    settings: MonitorSettings = field(default_factory=MonitorSettings)


def _err(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _load_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _err(str(path), f"cannot read: {exc}") from exc
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise _err(str(path), f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                   f"{exc}") from exc
    if not isinstance(doc, Mapping):
        raise _err(str(path), "the monitor configuration is a mapping (rules, sinks, ...)")
    return doc


def _duration_us(value: Any, where: str) -> timedelta:
    if not isinstance(value, str):
        raise _err(where, "a duration like 30m, 1h or 2d")
    try:
        return timedelta(microseconds=parse_duration(value, "config", where))
    except (RuleError, ValidationError) as exc:
        raise _err(where, f"{value!r} is not a duration like 30m, 1h or 2d") from exc


def _suppressions(value: Any, where: str) -> list[Suppression]:
    if not isinstance(value, list):
        raise _err(where, "a list of {rule, key, until, reason}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("rule"), str):
            raise _err(f"{at}.rule", "required: the rule id (or * for every rule)")
        unknown = set(item) - {"rule", "key", "until", "reason"}
        if unknown:
            raise _err(f"{at}.{sorted(unknown)[0]}", "unknown setting")
        until = item.get("until")
        if until is not None:
            try:
                until = parse_time(str(until))
            except ValueError as exc:
                raise _err(f"{at}.until", f"not an RFC 3339 time: {exc}") from exc
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise _err(f"{at}.key", "a string")
        reason = item.get("reason", "")
        if not isinstance(reason, str):
            raise _err(f"{at}.reason", "a string")
        out.append(Suppression(item["rule"], key, until, reason))
    return out


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _err(where, "a duration like 30s, 1h or 2d")
    try:
        return parse_duration(value, "config", where) / 1_000_000
    except (RuleError, ValidationError) as exc:
        raise _err(where, f"{value!r} is not a duration like 30s, 1h or 2d") from exc


def _hook(value: Any, where: str) -> HookSettings:
    if not isinstance(value, Mapping):
        raise _err(where, "a mapping with command (a list of arguments) and timeout")
    unknown = set(value) - {"command", "timeout", "env"}
    if unknown:
        raise _err(f"{where}.{sorted(unknown)[0]}", "unknown setting; use command, timeout, env")
    command = value.get("command")
    if isinstance(command, str):
        raise _err(f"{where}.command", "a list of arguments (no shell), e.g. [/usr/local/bin/"
                   "keep-checkpoint, --bucket, audit]")
    if (not isinstance(command, list) or not command
            or not all(isinstance(a, str) and a and "\0" not in a for a in command)):
        raise _err(f"{where}.command", "required: a non-empty list of non-empty arguments")
    timeout = 30.0
    if "timeout" in value:
        timeout = _seconds(value["timeout"], f"{where}.timeout")
        if timeout > 3600:
            raise _err(f"{where}.timeout", "at most 1h")
    env = value.get("env", {})
    if not isinstance(env, Mapping):
        raise _err(f"{where}.env", "a mapping of variable names to strings")
    for name, text in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name) \
                or name.startswith("SEALTRAIL_"):
            raise _err(f"{where}.env.{name}", "a variable name (letters, digits, _), not "
                       "SEALTRAIL_*")
        if not isinstance(text, str) or "\0" in text:
            raise _err(f"{where}.env.{name}", "a string")
    return HookSettings(tuple(command), timeout, tuple((str(k), str(v)) for k, v in
                                                       env.items()))


def _publish(doc: Mapping[str, Any], where: str, sinks: Sequence[Mapping[str, Any]],
             names: Sequence[str]) -> PublishSettings:
    """``publish`` (interval, which sinks) and ``hooks`` (checkpoint.publish)."""
    publish = doc.get("publish", {})
    if publish is None:
        publish = {}
    if not isinstance(publish, Mapping):
        raise _err(f"{where}.publish", "a mapping with interval and/or sinks")
    unknown = set(publish) - {"interval", "sinks"}
    if unknown:
        raise _err(f"{where}.publish.{sorted(unknown)[0]}", "unknown setting; use interval, "
                   "sinks")
    interval = 3600.0
    value = publish.get("interval", "1h")
    if value is False or value == 0 or value in ("0", "off"):
        interval = 0.0
    else:
        interval = _seconds(value, f"{where}.publish.interval")
        if interval < _PUBLISH_MIN:
            raise _err(f"{where}.publish.interval", "at least 1m (or 0/off to publish nothing)")
    chosen = list(sinks)
    if "sinks" in publish:
        wanted = publish["sinks"]
        if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
            raise _err(f"{where}.publish.sinks", "a list of sink names ([] for none)")
        for i, name in enumerate(wanted):
            if name not in names:
                raise _err(f"{where}.publish.sinks[{i}]", f"no sink is named {name!r} "
                           f"(sinks: {', '.join(names) or 'none'})")
        chosen = [s for s, n in zip(sinks, names, strict=True) if n in wanted]
    hooks = doc.get("hooks", {})
    if hooks is None:
        hooks = {}
    if not isinstance(hooks, Mapping):
        raise _err(f"{where}.hooks", f"a mapping of hook names ({HOOK_NAME}) to commands")
    unknown = set(hooks) - {HOOK_NAME}
    if unknown:
        raise _err(f"{where}.hooks.{sorted(unknown)[0]}", f"unknown hook; use {HOOK_NAME}")
    hook = _hook(hooks[HOOK_NAME], f"{where}.hooks.{HOOK_NAME}") if HOOK_NAME in hooks \
        else None
    return PublishSettings(interval, tuple(dict(s) for s in chosen), hook)


def build_config(doc: Mapping[str, Any] | None = None, *, base: Path | None = None,
                 rules_paths: Sequence[Path] = (), sinks: Sequence[Mapping[str, Any]] = (),
                 where: str = "monitor") -> MonitorConfig:
    """A validated configuration from a config document plus command-line additions."""
    doc = doc or {}
    unknown = set(doc) - _KEYS
    if unknown:
        raise _err(f"{where}.{sorted(unknown)[0]}",
                   f"unknown setting; use {', '.join(sorted(_KEYS))}")
    builtin = doc.get("builtin", True)
    if builtin is True:
        rules = builtin_rules()
    elif builtin is False:
        rules = []
    elif isinstance(builtin, Mapping):
        try:
            rules = configure_builtin(builtin)
        except (RuleError, ValidationError, ConfigError) as exc:
            raise _err(f"{where}.builtin", str(exc)) from exc
    else:
        raise _err(f"{where}.builtin", "true, false or a mapping of rule overrides")
    paths = list(rules_paths)
    listed = doc.get("rules", [])
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise _err(f"{where}.rules", "a list of rule files or directories")
    paths.extend((base / p if base is not None else Path(p)) for p in listed)
    for path in paths:
        if not path.exists():
            raise _err(f"{where}.rules", f"{path}: no such file or directory")
        try:
            rules.extend(load_rules(path))  # RuleError names the file and rule
        except RulesError as exc:  # several: one line of the config error each
            raise _err(f"{where}.rules", "; ".join([exc.summary, *map(str, exc.errors)])
                       ) from exc
    try:
        check_unique(rules)
    except RuleError as exc:
        raise _err(f"{where}.rules", str(exc)) from exc
    sink_docs = doc.get("sinks", [])
    if not isinstance(sink_docs, list):
        raise _err(f"{where}.sinks", "a list of sinks")
    settings = MonitorSettings()
    if "dedup_window" in doc:
        settings.dedup_window = _duration_us(doc["dedup_window"], f"{where}.dedup_window")
    if "suppress" in doc:
        settings.suppress = _suppressions(doc["suppress"], f"{where}.suppress")
    disk = doc.get("disk_min_free")
    if disk is not None:
        if not isinstance(disk, Mapping) or set(disk) - {"ratio", "bytes"}:
            raise _err(f"{where}.disk_min_free", "a mapping with ratio and/or bytes")
        ratio = disk.get("ratio", settings.disk_min_free_ratio)
        if not isinstance(ratio, int | float) or not 0 <= ratio < 1:
            raise _err(f"{where}.disk_min_free.ratio", "a number from 0 to 1")
        size = disk.get("bytes", settings.disk_min_free_bytes)
        if not isinstance(size, int) or size < 0:
            raise _err(f"{where}.disk_min_free.bytes", "a non-negative integer")
        settings.disk_min_free_ratio, settings.disk_min_free_bytes = float(ratio), size
    if "lag_alert_entries" in doc:
        lag = doc["lag_alert_entries"]
        if not isinstance(lag, int) or lag < 1:
            raise _err(f"{where}.lag_alert_entries", "a positive integer")
        settings.lag_alert_entries = lag
    all_sinks = [*sink_docs, *sinks]
    for i, item in enumerate(all_sinks):
        if not isinstance(item, Mapping):
            raise _err(f"{where}.sinks[{i}]", "a sink is a mapping with a type")
    # Build them once now, so a bad sink stops the start instead of a monitor process
    # failing later, unseen; connections are made only when an alert is sent.
    names = []
    for sink in build_sinks(all_sinks, where=f"{where}.sinks"):
        names.append(sink.name)
        sink.close()
    settings.publish = _publish(doc, where, all_sinks, names)
    return MonitorConfig(rules, [dict(s) for s in all_sinks], settings)


def load_config(path: Path | None, *, rules_paths: Sequence[Path] = (),
                sinks: Sequence[Mapping[str, Any]] = ()) -> MonitorConfig:
    """The configuration from a file (or none) plus ``--rules`` and ``--alert-webhook``."""
    if path is None:
        return build_config(None, rules_paths=rules_paths, sinks=sinks)
    return build_config(_load_file(path), base=path.parent, rules_paths=rules_paths,
                        sinks=sinks, where=str(path))
