from argon2 import PasswordHasher

from authsvc.passwords import PasswordHasherService


def hasher(t=1, m=1024, p=1):
    return PasswordHasherService(time_cost=t, memory_cost=m, parallelism=p)


def test_hash_is_argon2id_with_configured_parameters_and_salt():
    h = hasher(t=2, m=2048, p=2)
    a, b = h.hash("pw one two three four"), h.hash("pw one two three four")
    assert a.startswith("$argon2id$v=19$m=2048,t=2,p=2$")
    assert a != b  # per-hash random salt


def test_verify_and_rehash_when_parameters_change():
    old = hasher(t=1).hash("long enough password here")
    new = hasher(t=2)
    assert new.verify(old, "long enough password here").needs_rehash is True
    assert new.verify(new.hash("long enough password here"), "long enough password here").needs_rehash is False
    assert new.verify(old, "wrong").ok is False


def test_unknown_user_verifies_against_dummy_of_same_cost():
    h = hasher(t=2, m=2048, p=1)
    assert h.verify(None, "anything").ok is False
    # The dummy is a real hash at the current parameters, so its verify costs the same.
    assert PasswordHasher().check_needs_rehash(h._dummy) is True  # differs from argon2 defaults...
    assert "$m=2048,t=2,p=1$" in h._dummy  # ...and equals ours


def test_nfkc_equivalent_passwords_verify():
    h = hasher()
    stored = h.hash("ﬁne ﬁne ﬁne ﬁne")  # ligatures
    assert h.verify(stored, "fine fine fine fine").ok
