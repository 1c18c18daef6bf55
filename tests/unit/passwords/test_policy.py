import pytest

from authsvc.passwords import PasswordPolicy, normalize


class ListBreach:
    """A real (tiny) breach checker: membership in a set."""

    def __init__(self, *words):
        self.words = set(words)

    def is_breached(self, password):
        return password in self.words


def policy(**kw):
    args = dict(min_length=15, min_length_with_mfa=8, max_length=256, service_name="authsvc",
                breach_checker=ListBreach("correct horse battery staple"))
    args.update(kw)
    return PasswordPolicy(**args)


def codes(problems):
    return [p.code for p in problems]


@pytest.mark.parametrize("password, expected", [
    ("a" * 14, ["too_short"]),
    ("lowercase only passphrase", []),  # no composition rules
    ("x" * 64, []),
    ("x" * 256, []),
    ("x" * 257, ["too_long"]),
    ("correct horse battery staple", ["breached"]),
    ("my authsvc password is long", ["context_word"]),
    ("alice.smith rules the world", ["context_word"]),
])
def test_policy_table(password, expected):
    assert codes(policy().check(password, email="alice.smith@example.com")) == expected


def test_length_counts_code_points_after_nfkc():
    # 15 emoji are 15 code points (60 UTF-8 bytes): accepted; 14 are refused.
    assert codes(policy().check("🔑" * 15)) == []
    assert codes(policy().check("🔑" * 14)) == ["too_short"]
    # NFKC folds the ligature "ﬁ" (1 code point) into "fi" (2): length is counted after normalisation.
    assert len(normalize("ﬁ" * 8)) == 16
    assert codes(policy().check("ﬁ" * 8)) == []


def test_shorter_minimum_with_mfa():
    assert codes(policy().check("eight ch", has_mfa=True)) == []
    assert codes(policy().check("eight ch", has_mfa=False)) == ["too_short"]


def test_case_is_preserved_and_not_truncated():
    # Different case → different password for the breach list: the secret is never case-folded.
    assert codes(policy().check("Correct Horse Battery Staple")) == []


def test_problem_messages_are_actionable():
    (p,) = policy().check("correct horse battery staple")
    assert "breach" in p.message and "password manager" in p.message


# --- guessability floor (issue #12 newcomer walk): what no breach list holds ----------------------------------------
FLOOR = dict(min_guesses_log10=7.0)


@pytest.mark.parametrize("password", ["passwordpassword", "password123456789", "qwertyuiopasdfgh", "x" * 64,
                                      "abcdefghijklmnop", "1234567890123456", "iloveyouiloveyou", "ab" * 40])
def test_guessability_floor_refuses_patterns_no_list_holds(password):
    problems = policy(**FLOOR).check(password)
    assert codes(problems) == ["guessable"]
    assert "easy to guess" in problems[0].message and "unrelated words" in problems[0].message


@pytest.mark.parametrize("password", ["lowercase only passphrase", "a completely different passphrase",
                                      "my dog is called rex", "Correct Horse Battery Staple", "🔑 unlock the door 🔑",
                                      "sunny day at the beach", "Tr0ub4dor&3 with more words"])
def test_guessability_floor_accepts_normal_passphrases(password):
    assert codes(policy(**FLOOR).check(password)) == []


def test_guessability_floor_is_off_by_default_and_breached_is_reported_alone():
    assert codes(policy().check("passwordpassword")) == []
    assert codes(policy(**FLOOR).check("correct horse battery staple")) == ["breached"]


def test_guessability_estimate_of_a_long_password_stays_fast():
    import time

    start = time.process_time()
    for _ in range(5):
        policy(**FLOOR).check("ab" * 128)
    assert time.process_time() - start < 5  # zxcvbn looks at the first 72 code points only (it refuses longer)
