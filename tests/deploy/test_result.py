"""``deploy.broker_refused``: the larger of the two witnesses that can count a refusal."""

from __future__ import annotations

from tinylarge.deploy.result import broker_refused


def test_each_refusal_is_the_larger_count_of_the_witnesses_that_can_count_it() -> None:
    log = {"no_certificate": 2, "bad_certificate": 1, "acl_denied": 22, "connections": 31}
    adversary = {"no_certificate": 1, "revoked": 1, "acl_denied": 303}
    out = broker_refused(log, adversary)
    assert out["broker_refused"] == {"no_certificate": 2, "revoked": 1, "acl_denied": 303}
    assert out["broker_refused_sources"] == {"broker_log": log, "adversary": adversary}


def test_what_no_witness_can_count_is_none() -> None:
    log = {"no_certificate": 0, "bad_certificate": 0, "acl_denied": 0}
    assert broker_refused(log, None)["broker_refused"] == {
        "no_certificate": 0, "revoked": None, "acl_denied": 0
    }  # fmt: skip
    nobody = broker_refused(None, None)  # a broker given by URL, no fault run
    assert nobody["broker_refused"] == dict.fromkeys(("no_certificate", "revoked", "acl_denied"))
    assert nobody["broker_refused_sources"] == {"broker_log": None, "adversary": None}
