"""Hypothesis properties of the password policy, hashing and session-token parsing."""

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc.passwords import PasswordHasherService, PasswordPolicy, normalize


class NoBreach:
    def is_breached(self, password):
        return False


POLICY = PasswordPolicy(min_length=15, min_length_with_mfa=8, max_length=256, service_name="authsvc",
                        breach_checker=NoBreach())
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(text)
def test_policy_never_raises_and_length_rules_hold(password):
    codes = {p.code for p in POLICY.check(password, email="someone@example.com")}
    n = len(unicodedata.normalize("NFKC", password))
    assert ("too_short" in codes) == (n < 15)
    assert ("too_long" in codes) == (n > 256)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=15, max_size=64))
def test_no_composition_rules(password):
    # Lower-case letters and spaces only, long enough: never refused for what it is made of.
    codes = {p.code for p in POLICY.check(password)}
    assert codes <= {"context_word"}


@given(text)
def test_normalize_is_idempotent(password):
    assert normalize(normalize(password)) == normalize(password)


HASHER = PasswordHasherService(time_cost=1, memory_cost=256, parallelism=1)


@settings(max_examples=25, deadline=None)
@given(text, text)
def test_hash_roundtrip_and_no_collision_between_different_normal_forms(a, b):
    stored = HASHER.hash(a)
    assert HASHER.verify(stored, a).ok
    assert HASHER.verify(stored, b).ok == (normalize(a) == normalize(b))


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=300))
def test_session_token_parsing_never_raises(svc, token):
    assert svc.sessions.check(token) is None
    assert svc.sessions.check_light(token) is None
