"""Identity checks and signals on real processes (no feed involved)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys

import psutil
import pytest

from tokentop.core.control import process
from tokentop.core.control.process import ProcessIdentity, Refused

from tests.control.helpers import proc_status, wait_for


def test_pause_resume_terminate_a_real_process_group(children):
    p = children.start()
    ident = process.identify(p.pid)
    assert ident.uid == os.getuid() and ident.pid == p.pid
    said = process.pause(ident)
    assert "process group" in said
    assert wait_for(lambda: proc_status(p.pid) == psutil.STATUS_STOPPED)
    process.resume(ident)
    assert wait_for(lambda: proc_status(p.pid) in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING))
    process.pause(ident)  # terminate must work on a paused process too (SIGCONT follows the TERM)
    assert wait_for(lambda: proc_status(p.pid) == psutil.STATUS_STOPPED)
    message = asyncio.run(process.terminate(ident, grace_s=5))
    assert "SIGTERM sent" in message and "exited" in message
    assert p.wait(5) == -15


def test_terminate_escalates_to_sigkill_after_the_grace(children):
    p = children.start(ignore_term=True)
    ident = process.identify(p.pid)
    message = asyncio.run(process.terminate(ident, grace_s=0.3))
    assert "SIGKILL sent" in message
    assert p.wait(5) == -9


def test_recycled_pid_is_refused_and_not_signalled(children):
    p = children.start()
    real = process.identify(p.pid)
    recorded = dataclasses.replace(real, create_time=real.create_time - 30.0)  # same pid, different process
    with pytest.raises(Refused) as err:
        process.pause(recorded)
    assert err.value.code == "recycled"
    assert "different process" in err.value.reason
    assert proc_status(p.pid) != psutil.STATUS_STOPPED
    with pytest.raises(Refused):
        asyncio.run(process.terminate(recorded, grace_s=0.1))
    assert p.poll() is None


@pytest.mark.parametrize("pid", [1, 0, -1])
def test_pid_1_and_below_are_refused(pid):
    ident = ProcessIdentity(pid, psutil.Process(1).create_time() if pid == 1 else 1.0, os.getuid())
    with pytest.raises(Refused) as err:
        process.verify(ident)
    assert err.value.code == "pid_invalid"


def test_tokentop_itself_and_its_ancestors_are_refused():
    me = process.identify(os.getpid())
    with pytest.raises(Refused) as err:
        process.verify(me)
    assert err.value.code == "protected" and "tokentop itself" in err.value.reason
    parent = process.identify(os.getppid())
    with pytest.raises(Refused) as err:
        process.pause(parent)
    assert err.value.code == "protected" and "ancestor" in err.value.reason


def test_recorded_uid_of_another_user_is_refused(children):
    p = children.start()
    real = process.identify(p.pid)
    with pytest.raises(Refused) as err:
        process.pause(dataclasses.replace(real, uid=real.uid + 4242))
    assert err.value.code == "other_user"
    assert proc_status(p.pid) != psutil.STATUS_STOPPED


def _other_users_process():
    """A live process owned by someone else: started as 'nobody' when we are root, else found."""
    me = os.getuid()
    if me == 0:
        child = subprocess.Popen(["sleep", "30"], user=65534, group=65534, process_group=0)
        return child, process.identify(child.pid)
    for proc in psutil.process_iter(["pid", "uids"]):
        if proc.info["pid"] > 2 and proc.info["uids"] and proc.info["uids"].real != me:
            try:
                return None, process.identify(proc.info["pid"])
            except Refused:
                continue
    pytest.skip("no process of another user is visible")


def test_live_process_of_another_user_is_refused():
    child, ident = _other_users_process()
    try:
        assert ident.uid != os.getuid()
        # even if someone recorded it with our uid, the live uid decides
        forged = dataclasses.replace(ident, uid=os.getuid())
        for recorded in (ident, forged):
            with pytest.raises(Refused) as err:
                process.pause(recorded)
            assert err.value.code == "other_user"
        assert proc_status(ident.pid) != psutil.STATUS_STOPPED
    finally:
        if child is not None:
            child.kill()
            child.wait()


def test_gone_process_is_refused(children):
    p = children.start()
    ident = process.identify(p.pid)
    p.kill()
    p.wait()
    with pytest.raises(Refused) as err:
        process.pause(ident)
    assert err.value.code == "gone"


def test_signal_names_are_checked():
    assert process.parse_signal("sigterm", "KILL") == ("TERM", 15)
    assert process.parse_signal(None, "KILL") == ("KILL", 9)
    assert process.parse_signal("2", "KILL") == ("INT", 2)
    with pytest.raises(Refused) as err:
        process.parse_signal("STOP", "TERM")
    assert err.value.code == "bad_signal"


def test_identity_record_validation_names_the_field():
    with pytest.raises(ValueError, match="pid"):
        ProcessIdentity.from_json({"pid": "12", "create_time": 1.0, "uid": 0})
    with pytest.raises(ValueError, match="create_time"):
        ProcessIdentity.from_json({"pid": 12, "uid": 0})
    with pytest.raises(ValueError, match="uid"):
        ProcessIdentity.from_json({"pid": 12, "create_time": 5.0, "uid": -1})
